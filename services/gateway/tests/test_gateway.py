"""The gateway's unit tests: the app on generated mocks of auth, user and dummy, over httpx.

Every test builds the app in-process (``httpx.ASGITransport``) on channels to the
harness's gRPC mocks, programs what each service answers and verifies what it was asked.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

from auth import auth_pb2, auth_pb2_grpc
from dummy import dummy_pb2, dummy_pb2_grpc
from fixtures.gateway import CSRF, assert_error, set_cookies
from gateway.app import create_app
from gateway.clients import Clients
from gateway.settings import GatewaySettings
from gateway.tracing import install_tracing
from harness import GrpcMock, GrpcMocks
from servicekit.channels import service_channel
from user import user_pb2, user_pb2_grpc

if TYPE_CHECKING:
    from auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from dummy.v1.dummy_pb2_grpc import DummyServiceAsyncStub
    from user.v1.user_pb2_grpc import UserServiceAsyncStub

USER_ID = "0b9f3c52-0a43-4d47-9d2e-0c8e8e2f6a11"
TOKEN = "sid.secret"


def session(user_id: str = USER_ID, expire_seconds: int = 7 * 24 * 3600) -> auth_pb2.Session:
    expire = Timestamp()
    expire.GetCurrentTime()
    expire.seconds += expire_seconds
    return auth_pb2.Session(id="sid", user_id=user_id, expire_time=expire)


@dataclass
class Gateway:
    http: httpx.AsyncClient
    auth: GrpcMock[AuthServiceAsyncStub]
    user: GrpcMock[UserServiceAsyncStub]
    dummy: GrpcMock[DummyServiceAsyncStub]
    settings: GatewaySettings

    def logged_in(self, user_id: str = USER_ID, *, refreshed: bool = False) -> None:
        """Program auth to accept the session cookie, and send it."""
        self.auth.when(lambda s: s.ValidateSession).returns(
            auth_pb2.ValidateSessionResponse(session=session(user_id), refreshed=refreshed)
        )
        self.http.cookies.set(self.settings.session_cookie_name, TOKEN)


GatewayFactory = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def make_gateway(grpc_mocks: GrpcMocks) -> GatewayFactory:
    """``async with make_gateway(environment="production") as gw``: settings overridden."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Gateway]:
        values: dict[str, Any] = {
            "environment": "local",
            "grpc_timeout_seconds": 0.5,
            "readiness_timeout_seconds": 0.5,
        }
        values.update(overrides)
        settings = GatewaySettings(**values)
        auth = grpc_mocks.of(auth_pb2_grpc.AuthServiceStub)
        user = grpc_mocks.of(user_pb2_grpc.UserServiceStub)
        dummy = grpc_mocks.of(dummy_pb2_grpc.DummyServiceStub)
        clients = Clients.on_channels(
            auth=grpc.aio.insecure_channel(auth.start()),
            user=grpc.aio.insecure_channel(user.start()),
            dummy=grpc.aio.insecure_channel(dummy.start()),
            timeout=settings.grpc_timeout_seconds,
        )
        app = create_app(settings, clients)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield Gateway(http, auth, user, dummy, settings)
        finally:
            await clients.close()

    return make


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    """The gateway in the local environment, not logged in."""
    async with make_gateway() as gateway:
        yield gateway


@pytest.fixture
async def logged_in(gw: Gateway) -> Gateway:
    """The gateway with a valid session cookie of USER_ID."""
    gw.logged_in()
    return gw


ENTITY_ID = "7a1d4d1e-3a57-4f5e-9d2f-5b1f0a0c9e21"
OTHER_USER = "3c0f8f34-54a4-4b1c-8a33-2b0a2e9f4d10"


def entity_pb(entity_id: str = ENTITY_ID, name: str = "first") -> dummy_pb2.Entity:
    now = Timestamp()
    now.GetCurrentTime()
    return dummy_pb2.Entity(
        id=entity_id, owner_id=USER_ID, name=name, description="", create_time=now, update_time=now
    )


def user_pb(user_id: str = USER_ID, email: str = "ann@example.com") -> user_pb2.User:
    return user_pb2.User(id=user_id, email=email, name="Ann")


# --- gRPC status -> HTTP -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error_code"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_argument"),
        (grpc.StatusCode.UNAUTHENTICATED, 401, "unauthenticated"),
        (grpc.StatusCode.PERMISSION_DENIED, 403, "permission_denied"),
        (grpc.StatusCode.NOT_FOUND, 404, "not_found"),
        (grpc.StatusCode.ALREADY_EXISTS, 409, "already_exists"),
        (grpc.StatusCode.FAILED_PRECONDITION, 409, "failed_precondition"),
        (grpc.StatusCode.UNAVAILABLE, 503, "unavailable"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "deadline_exceeded"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 502, "bad_gateway"),
        (grpc.StatusCode.UNIMPLEMENTED, 502, "bad_gateway"),
        (grpc.StatusCode.ABORTED, 502, "bad_gateway"),
        (grpc.StatusCode.OUT_OF_RANGE, 502, "bad_gateway"),
        (grpc.StatusCode.DATA_LOSS, 502, "bad_gateway"),
        (grpc.StatusCode.CANCELLED, 502, "bad_gateway"),
    ],
    ids=lambda value: value.name.lower() if isinstance(value, grpc.StatusCode) else None,
)
async def test_each_grpc_status_has_one_http_status(
    logged_in: Gateway, code: grpc.StatusCode, status: int, error_code: str
) -> None:
    # Every code, declared by GetEntity or not: the mapping holds for a provider that
    # breaks its contract too.
    logged_in.dummy.when(lambda s: s.GetEntity).fails(code, "inner detail 42", breaks_contract=True)
    response = await logged_in.http.get(f"/entities/{ENTITY_ID}")
    error = assert_error(response, status, error_code)
    if status >= 500:
        assert "inner detail 42" not in response.text
    else:
        assert error["message"] == "inner detail 42"


# --- a change whose outcome is unknown (issue 10 defect 3) --------------------------

WRITE_OUTCOME_UNKNOWN = (
    "storage became unavailable during the write, outcome unknown; retry with the same request_id"
)
FAILED = (("kit-outcome", "failed"),)
UNKNOWN = (("kit-outcome", "unknown"),)
GATEWAY_SAYS_UNKNOWN = "the change may or may not have been made (outcome unknown)"
GATEWAY_SAYS_UNAVAILABLE = "a service the gateway depends on is unavailable; retry later"

# (method, downstream code, details, trailing metadata) -> (HTTP status, code, message start)
OUTCOME_CASES: dict[
    str,
    tuple[
        tuple[str, grpc.StatusCode, str, tuple[tuple[str, str], ...]],
        tuple[int, str, str],
    ],
] = {
    "dummy changed nothing (its answer says failed)": (
        ("POST", grpc.StatusCode.UNAVAILABLE, "storage is unavailable, retry later", FAILED),
        (503, "unavailable", GATEWAY_SAYS_UNAVAILABLE),
    ),
    "dummy lost its database after sending the write: its advice passed on": (
        ("POST", grpc.StatusCode.UNAVAILABLE, WRITE_OUTCOME_UNKNOWN, UNKNOWN),
        (503, "outcome_unknown", WRITE_OUTCOME_UNKNOWN),
    ),
    "the call cancelled mid-way (a server going down)": (
        ("POST", grpc.StatusCode.CANCELLED, "Cancelled", ()),
        (502, "outcome_unknown", GATEWAY_SAYS_UNKNOWN),
    ),
    "the connection to dummy reset mid-call": (
        ("POST", grpc.StatusCode.UNAVAILABLE, "Socket closed", ()),
        (503, "outcome_unknown", GATEWAY_SAYS_UNKNOWN),
    ),
    "the gateway's deadline ran out": (
        ("PATCH", grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", ()),
        (504, "outcome_unknown", GATEWAY_SAYS_UNKNOWN),
    ),
    "dummy could not be reached at all: never sent": (
        (
            "DELETE",
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
            "Failed to connect to remote host: Connection refused",
            (),
        ),
        (503, "unavailable", GATEWAY_SAYS_UNAVAILABLE),
    ),
    "no backend of dummy could be reached (round_robin): never sent": (
        (
            "POST",
            grpc.StatusCode.UNAVAILABLE,
            "connections to all backends failing; last error: UNKNOWN: ipv4:127.0.0.1:1: "
            "connection attempt timed out before receiving SETTINGS frame",
            (),
        ),
        (503, "unavailable", GATEWAY_SAYS_UNAVAILABLE),
    ),
    "a read changes nothing, whatever happened": (
        ("GET", grpc.StatusCode.UNAVAILABLE, "Socket closed", ()),
        (503, "unavailable", GATEWAY_SAYS_UNAVAILABLE),
    ),
}


@pytest.mark.parametrize(("downstream", "expected"), OUTCOME_CASES.values(), ids=OUTCOME_CASES)
async def test_a_change_whose_outcome_is_unknown_says_so(
    logged_in: Gateway,
    downstream: tuple[str, grpc.StatusCode, str, tuple[tuple[str, str], ...]],
    expected: tuple[int, str, str],
) -> None:
    method, code, details, metadata = downstream
    rpc = {"POST": "CreateEntity", "PATCH": "UpdateEntity", "DELETE": "DeleteEntity"}
    logged_in.dummy.when(lambda s: getattr(s, rpc.get(method, "GetEntity"))).fails(
        code, details, trailing_metadata=metadata
    )
    path = "/entities" if method == "POST" else f"/entities/{ENTITY_ID}"
    body = {"POST": {"name": "lamp", "request_id": OTHER_USER}, "PATCH": {"name": "lamp"}}.get(
        method
    )
    response = await logged_in.http.request(method, path, json=body, headers=CSRF)
    status, error_code, message = expected
    error = assert_error(response, status, error_code)
    assert error["message"].startswith(message), error


async def test_a_stopped_service_gives_503_at_once(logged_in: Gateway) -> None:
    await logged_in.dummy.aclose()
    started = time.monotonic()
    response = await logged_in.http.get(f"/entities/{ENTITY_ID}")
    assert_error(response, 503, "unavailable")
    assert time.monotonic() - started < 2.0


async def test_a_call_slower_than_its_deadline_gives_504(make_gateway: GatewayFactory) -> None:
    async with make_gateway(grpc_timeout_seconds=0.2) as gw:
        gw.logged_in()
        gw.dummy.when(lambda s: s.GetEntity).delays(1.0).returns(
            dummy_pb2.GetEntityResponse(entity=entity_pb())
        )
        response = await gw.http.get(f"/entities/{ENTITY_ID}")
        assert_error(response, 504, "deadline_exceeded")


# --- sessions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cookie", "answer"),
    [
        (None, None),
        ("garbage", grpc.StatusCode.UNAUTHENTICATED),
        ("unknown.secret", grpc.StatusCode.UNAUTHENTICATED),
        ("expired.secret", grpc.StatusCode.UNAUTHENTICATED),
        (" ", grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["missing", "malformed", "unknown", "expired", "blank"],
)
async def test_no_valid_session_is_401(
    gw: Gateway, cookie: str | None, answer: grpc.StatusCode | None
) -> None:
    if answer is not None:
        gw.auth.when(lambda s: s.ValidateSession).fails(answer, "no such session")
    if cookie is not None:
        gw.http.cookies.set("session", cookie)
    response = await gw.http.get("/user/me")
    error = assert_error(response, 401, "unauthenticated")
    assert "no such session" not in error["message"]
    gw.user.verify(lambda s: s.GetUser).never_called()
    if cookie is None:
        gw.auth.verify(lambda s: s.ValidateSession).never_called()


# One rule for every cookie the gateway reads: sent more than once, it is refused, in
# whichever order the copies come (the first or the last winning would let a cookie set
# by another path or a parent domain choose the session).
DUPLICATE_SESSIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("forged then valid", [("cookie", f"session=forged.x; session={TOKEN}")]),
    ("valid then forged", [("cookie", f"session={TOKEN}; session=forged.x")]),
    ("the same twice", [("cookie", f"session={TOKEN}; session={TOKEN}")]),
    ("empty then valid", [("cookie", f"session=; session={TOKEN}")]),
    ("in two Cookie headers", [("cookie", f"session={TOKEN}"), ("cookie", "session=forged.x")]),
]


@pytest.mark.parametrize(
    "headers", [pytest.param(headers, id=case) for case, headers in DUPLICATE_SESSIONS]
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/user/me"), ("POST", "/logout")], ids=["me", "logout"]
)
async def test_a_session_cookie_sent_twice_is_401_ambiguous(
    logged_in: Gateway, method: str, path: str, headers: list[tuple[str, str]]
) -> None:
    logged_in.http.cookies.clear()
    response = await logged_in.http.request(method, path, headers=[*headers, *CSRF.items()])
    assert_error(response, 401, "ambiguous_session")
    assert logged_in.auth.all_calls() == []


async def test_one_session_cookie_among_others_is_accepted(logged_in: Gateway) -> None:
    logged_in.http.cookies.clear()
    logged_in.user.when(lambda s: s.GetUser).returns(
        user_pb2.GetUserResponse(user=user_pb2.User(id=USER_ID, email="ann@example.com"))
    )
    response = await logged_in.http.get(
        "/user/me", headers={"cookie": f"sessions=x; session={TOKEN}; xsession=y"}
    )
    assert response.status_code == 200, response.text
    logged_in.auth.verify(lambda s: s.ValidateSession).called_once_with(
        auth_pb2.ValidateSessionRequest(token=TOKEN)
    )


async def test_auth_down_is_503_not_401(gw: Gateway) -> None:
    gw.auth.when(lambda s: s.ValidateSession).fails(grpc.StatusCode.UNAVAILABLE, "down")
    gw.http.cookies.set("session", TOKEN)
    assert_error(await gw.http.get("/user/me"), 503, "unavailable")


@pytest.mark.parametrize("refreshed", [True, False], ids=["refreshed", "not-refreshed"])
async def test_a_refreshed_session_reissues_the_cookie(gw: Gateway, refreshed: bool) -> None:
    gw.logged_in(refreshed=refreshed)
    gw.user.when(lambda s: s.GetUser).returns(user_pb2.GetUserResponse(user=user_pb()))
    response = await gw.http.get("/user/me")
    assert response.status_code == 200
    cookie = set_cookies(response).get("session")
    if refreshed:
        assert cookie is not None
        assert cookie.startswith(f"session={TOKEN};")
        assert "HttpOnly" in cookie
        assert "Max-Age=" in cookie
    else:
        assert cookie is None
    gw.auth.verify(lambda s: s.ValidateSession).called_once_with(
        auth_pb2.ValidateSessionRequest(token=TOKEN)
    )


async def test_a_refreshed_session_reissues_the_cookie_on_an_error_too(gw: Gateway) -> None:
    gw.logged_in(refreshed=True)
    gw.dummy.when(lambda s: s.GetEntity).fails(grpc.StatusCode.NOT_FOUND, "no such entity")
    response = await gw.http.get(f"/entities/{ENTITY_ID}")
    assert_error(response, 404, "not_found")
    cookie = set_cookies(response).get("session")
    assert cookie is not None
    assert cookie.startswith(f"session={TOKEN};")


async def test_an_unexpected_failure_is_500_in_the_error_shape(gw: Gateway) -> None:
    app = create_app(
        gw.settings,
        Clients.on_channels(
            auth=grpc.aio.insecure_channel("127.0.0.1:9"),
            user=grpc.aio.insecure_channel("127.0.0.1:9"),
            dummy=grpc.aio.insecure_channel("127.0.0.1:9"),
            timeout=0.1,
        ),
    )

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/boom")
    assert_error(response, 500, "internal")
    assert "secret internals" not in response.text
    await app.state.clients.close()


@pytest.mark.parametrize(
    ("environment", "secure"), [("local", False), ("production", True)], ids=["local", "production"]
)
async def test_cookie_flags_by_environment(
    make_gateway: GatewayFactory, environment: str, secure: bool
) -> None:
    async with make_gateway(environment=environment) as gw:
        gw.logged_in(refreshed=True)
        gw.user.when(lambda s: s.GetUser).returns(user_pb2.GetUserResponse(user=user_pb()))
        gw.auth.when(lambda s: s.StartOauthLogin).returns(
            auth_pb2.StartOauthLoginResponse(
                authorization_url="https://idp.example/auth", state="st", code_verifier="ver"
            )
        )
        for response, name in [
            (await gw.http.get("/user/me"), "session"),
            (await gw.http.get("/auth/google/login"), "oauth_state"),
        ]:
            cookie = set_cookies(response).get(name)
            assert cookie is not None
            assert "HttpOnly" in cookie
            assert "SameSite=lax" in cookie
            assert ("Secure" in cookie) is secure


# --- CSRF --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/entities", {"name": "x"}),
        ("PATCH", f"/entities/{ENTITY_ID}", {"name": "x"}),
        ("DELETE", f"/entities/{ENTITY_ID}", None),
        ("POST", "/logout", None),
        ("POST", "/auth/dev/login", {"email": "ann@example.com"}),
    ],
    ids=["create", "update", "delete", "logout", "dev-login"],
)
async def test_state_changes_without_the_csrf_header_are_refused(
    logged_in: Gateway, method: str, path: str, body: dict[str, str] | None
) -> None:
    response = await logged_in.http.request(method, path, json=body)
    assert_error(response, 403, "csrf_header_missing")
    assert logged_in.dummy.all_calls() == []
    assert logged_in.user.all_calls() == []


# --- entities ----------------------------------------------------------------------------


async def test_create_is_201_with_location_for_the_session_user(logged_in: Gateway) -> None:
    logged_in.dummy.when(lambda s: s.CreateEntity).returns(
        dummy_pb2.CreateEntityResponse(entity=entity_pb(name="first"))
    )
    response = await logged_in.http.post(
        "/entities", json={"name": "first", "description": "d"}, headers=CSRF
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/entities/{ENTITY_ID}"
    assert response.json()["id"] == ENTITY_ID
    logged_in.dummy.verify(lambda s: s.CreateEntity).called_once_with(
        dummy_pb2.CreateEntityRequest(owner_id=USER_ID, name="first", description="d")
    )


async def test_get_asks_for_the_session_users_entity(logged_in: Gateway) -> None:
    logged_in.dummy.when(lambda s: s.GetEntity).returns(
        dummy_pb2.GetEntityResponse(entity=entity_pb())
    )
    response = await logged_in.http.get(f"/entities/{ENTITY_ID}")
    assert response.status_code == 200
    assert response.json()["owner_id"] == USER_ID
    logged_in.dummy.verify(lambda s: s.GetEntity).called_once_with(
        dummy_pb2.GetEntityRequest(owner_id=USER_ID, id=ENTITY_ID)
    )


async def test_another_users_entity_is_404(gw: Gateway) -> None:
    gw.logged_in(OTHER_USER)
    gw.dummy.when(lambda s: s.GetEntity).fails(grpc.StatusCode.NOT_FOUND, "no such entity")
    assert_error(await gw.http.get(f"/entities/{ENTITY_ID}"), 404, "not_found")
    gw.dummy.verify(lambda s: s.GetEntity).called_once_with(
        dummy_pb2.GetEntityRequest(owner_id=OTHER_USER, id=ENTITY_ID)
    )


@pytest.mark.parametrize(
    ("query", "page_size", "page_token"),
    [("", 50, ""), ("?page_size=10&page_token=abc", 10, "abc"), ("?page_size=100", 100, "")],
    ids=["defaults", "size-and-token", "largest-page"],
)
async def test_list_passes_pagination_through(
    logged_in: Gateway, query: str, page_size: int, page_token: str
) -> None:
    logged_in.dummy.when(lambda s: s.ListEntities).returns(
        dummy_pb2.ListEntitiesResponse(entities=[entity_pb()], next_page_token="next")
    )
    response = await logged_in.http.get(f"/entities{query}")
    assert response.status_code == 200
    assert response.json()["next_page_token"] == "next"
    assert [item["id"] for item in response.json()["entities"]] == [ENTITY_ID]
    logged_in.dummy.verify(lambda s: s.ListEntities).called_once_with(
        dummy_pb2.ListEntitiesRequest(owner_id=USER_ID, page_size=page_size, page_token=page_token)
    )


@pytest.mark.parametrize(
    "query",
    ["?page_size=0", "?page_size=101", "?page_size=ten", "?page_size=-1"],
    ids=["zero", "too-large", "not-a-number", "negative"],
)
async def test_invalid_pagination_is_422(logged_in: Gateway, query: str) -> None:
    assert_error(await logged_in.http.get(f"/entities{query}"), 422, "validation_failed")
    logged_in.dummy.verify(lambda s: s.ListEntities).never_called()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "renamed"}, {"name": "renamed"}),
        ({"description": "new"}, {"description": "new"}),
        ({"description": ""}, {"description": ""}),
        ({"name": "both", "description": "set"}, {"name": "both", "description": "set"}),
    ],
    ids=["name-only", "description-only", "clear-description", "both"],
)
async def test_update_sends_only_the_fields_given(
    logged_in: Gateway, body: dict[str, str], expected: dict[str, str]
) -> None:
    logged_in.dummy.when(lambda s: s.UpdateEntity).returns(
        dummy_pb2.UpdateEntityResponse(entity=entity_pb(name="renamed"))
    )
    response = await logged_in.http.patch(f"/entities/{ENTITY_ID}", json=body, headers=CSRF)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "renamed"
    logged_in.dummy.verify(lambda s: s.UpdateEntity).called_once_with(
        dummy_pb2.UpdateEntityRequest(owner_id=USER_ID, id=ENTITY_ID, **expected)
    )


async def test_create_passes_the_idempotency_key(logged_in: Gateway) -> None:
    request_id = "9b1e2d7c-7c4f-4a8e-a3a5-0f5a3b1e2d7c"
    logged_in.dummy.when(lambda s: s.CreateEntity).returns(
        dummy_pb2.CreateEntityResponse(entity=entity_pb())
    )
    response = await logged_in.http.post(
        "/entities", json={"name": "first", "request_id": request_id}, headers=CSRF
    )
    assert response.status_code == 201
    logged_in.dummy.verify(lambda s: s.CreateEntity).called_once_with(
        dummy_pb2.CreateEntityRequest(owner_id=USER_ID, name="first", request_id=request_id)
    )


async def test_delete_is_204(logged_in: Gateway) -> None:
    logged_in.dummy.when(lambda s: s.DeleteEntity).returns(dummy_pb2.DeleteEntityResponse())
    response = await logged_in.http.delete(f"/entities/{ENTITY_ID}", headers=CSRF)
    assert response.status_code == 204
    assert response.content == b""
    logged_in.dummy.verify(lambda s: s.DeleteEntity).called_once_with(
        dummy_pb2.DeleteEntityRequest(owner_id=USER_ID, id=ENTITY_ID)
    )


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "code"),
    [
        ("POST", "/entities", b'{"name": ', 422, "validation_failed"),
        ("POST", "/entities", b'{"name": 5}', 422, "validation_failed"),
        ("POST", "/entities", b"{}", 422, "validation_failed"),
        ("POST", "/entities", b'{"name": "x", "owner_id": "someone"}', 422, "validation_failed"),
        ("POST", "/entities", b'{"name": "x", "request_id": "nope"}', 422, "validation_failed"),
        ("POST", "/entities", b'["name"]', 422, "validation_failed"),
        ("POST", "/entities", b'{"name": "\xff"}', 400, "bad_request"),
        ("POST", "/entities", b'{"name": "' + b"x" * 70_000 + b'"}', 413, "payload_too_large"),
        ("PATCH", f"/entities/{ENTITY_ID}", b"{}", 422, "validation_failed"),
        ("PATCH", "/entities/not-a-uuid", b'{"name": "x"}', 422, "validation_failed"),
        ("GET", "/entities/not-a-uuid", b"", 422, "validation_failed"),
        ("DELETE", "/entities/12345", b"", 422, "validation_failed"),
        ("PUT", f"/entities/{ENTITY_ID}", b"{}", 405, "method_not_allowed"),
        ("GET", "/nowhere", b"", 404, "not_found"),
    ],
    ids=[
        "broken-json",
        "wrong-type",
        "missing-name",
        "unknown-field",
        "bad-request-id",
        "not-an-object",
        "not-utf8",
        "oversized-body",
        "empty-update",
        "malformed-uuid-update",
        "malformed-uuid-get",
        "malformed-uuid-delete",
        "wrong-method",
        "unknown-route",
    ],
)
async def test_bad_input_is_a_clear_4xx(
    logged_in: Gateway, method: str, path: str, content: bytes, status: int, code: str
) -> None:
    headers = {"Content-Type": "application/json", **CSRF}
    response = await logged_in.http.request(method, path, content=content, headers=headers)
    assert_error(response, status, code)
    assert logged_in.dummy.all_calls() == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", f"/entities/{ENTITY_ID}", "DELETE, GET, PATCH"),
        ("DELETE", "/entities", "GET, POST"),
        # two routes match this path: /auth/dev/login (POST) and /auth/{provider}/login (GET)
        ("OPTIONS", "/auth/dev/login", "GET, POST"),
        ("PUT", "/user/me", "GET"),
    ],
    ids=["entity", "entities", "two-routes", "me"],
)
async def test_a_wrong_method_is_405_naming_every_method_of_the_path(
    logged_in: Gateway, method: str, path: str, allow: str
) -> None:
    response = await logged_in.http.request(method, path, headers=CSRF)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow
    for named in allow.split(", "):  # and each one named is taken (whatever it answers)
        assert (await logged_in.http.request(named, path, headers=CSRF)).status_code != 405


async def test_an_oversized_chunked_body_is_413(logged_in: Gateway) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    response = await logged_in.http.post(
        "/entities", content=chunks(), headers={"Content-Type": "application/json", **CSRF}
    )
    assert_error(response, 413, "payload_too_large")


# --- users and logout --------------------------------------------------------------------


async def test_me_is_the_session_user(logged_in: Gateway) -> None:
    logged_in.user.when(lambda s: s.GetUser).returns(user_pb2.GetUserResponse(user=user_pb()))
    response = await logged_in.http.get("/user/me")
    assert response.status_code == 200
    assert response.json()["email"] == "ann@example.com"
    logged_in.user.verify(lambda s: s.GetUser).called_once_with(user_pb2.GetUserRequest(id=USER_ID))


async def test_logout_deletes_the_session_and_expires_the_cookie(logged_in: Gateway) -> None:
    logged_in.auth.when(lambda s: s.DeleteSession).returns(auth_pb2.DeleteSessionResponse())
    response = await logged_in.http.post("/logout", headers=CSRF)
    assert response.status_code == 204
    cookie = set_cookies(response).get("session")
    assert cookie is not None
    assert "Max-Age=0" in cookie
    logged_in.auth.verify(lambda s: s.DeleteSession).called_once_with(
        auth_pb2.DeleteSessionRequest(token=TOKEN)
    )


# --- OAuth login -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/auth/myspace/login", "/auth/myspace/callback?code=c&state=s"])
async def test_an_unknown_provider_is_404(gw: Gateway, path: str) -> None:
    assert_error(await gw.http.get(path), 404, "unknown_provider")
    assert gw.auth.all_calls() == []


async def test_login_redirects_with_state_and_verifier_cookies(gw: Gateway) -> None:
    gw.auth.when(lambda s: s.StartOauthLogin).returns(
        auth_pb2.StartOauthLoginResponse(
            authorization_url="https://idp.example/auth?x=1", state="st", code_verifier="ver"
        )
    )
    response = await gw.http.get("/auth/google/login")
    assert response.status_code == 302
    assert response.headers["location"] == "https://idp.example/auth?x=1"
    for name, value in [("oauth_state", "st"), ("oauth_verifier", "ver")]:
        cookie = set_cookies(response).get(name)
        assert cookie is not None
        assert cookie.startswith(f"{name}={value};")
        assert "HttpOnly" in cookie
        assert "Max-Age=600" in cookie
    gw.auth.verify(lambda s: s.StartOauthLogin).called_once_with(
        auth_pb2.StartOauthLoginRequest(provider=auth_pb2.PROVIDER_GOOGLE)
    )


async def test_a_callback_with_a_mismatching_state_is_400(gw: Gateway) -> None:
    gw.auth.when(lambda s: s.HandleOauthCallback).fails(
        grpc.StatusCode.INVALID_ARGUMENT, "state does not match"
    )
    gw.http.cookies.set("oauth_state", "kept")
    response = await gw.http.get("/auth/github/callback?code=c&state=forged")
    assert_error(response, 400, "invalid_argument")
    assert set_cookies(response).get("session") is None
    gw.auth.verify(lambda s: s.HandleOauthCallback).called_once_with(
        auth_pb2.HandleOauthCallbackRequest(
            provider=auth_pb2.PROVIDER_GITHUB, code="c", state="forged", expected_state="kept"
        )
    )
    gw.auth.verify(lambda s: s.CreateSession).never_called()


@pytest.mark.parametrize(
    "cookie",
    [
        "oauth_state=kept; oauth_state=forged; oauth_verifier=ver",
        "oauth_state=forged; oauth_state=kept; oauth_verifier=ver",
        "oauth_state=kept; oauth_verifier=ver; oauth_verifier=other",
        "oauth_state=kept; oauth_verifier=other; oauth_verifier=ver",
    ],
    ids=["state-kept-first", "state-kept-last", "verifier-kept-first", "verifier-kept-last"],
)
async def test_an_oauth_cookie_sent_twice_is_400_ambiguous(gw: Gateway, cookie: str) -> None:
    response = await gw.http.get(
        "/auth/google/callback?code=c&state=kept", headers={"cookie": cookie}
    )
    assert_error(response, 400, "ambiguous_cookie")
    assert gw.auth.all_calls() == []


async def test_a_good_callback_creates_and_links_the_user_and_logs_in(gw: Gateway) -> None:
    identity = auth_pb2.OauthIdentity(
        provider=auth_pb2.PROVIDER_GOOGLE,
        provider_user_id="g-1",
        email="ann@example.com",
        name="Ann",
    )
    gw.auth.when(lambda s: s.HandleOauthCallback).returns(
        auth_pb2.HandleOauthCallbackResponse(identity=identity)
    )
    gw.user.when(lambda s: s.GetUserByEmail).fails(grpc.StatusCode.NOT_FOUND, "no such user")
    gw.user.when(lambda s: s.CreateUser).returns(user_pb2.CreateUserResponse(user=user_pb()))
    gw.auth.when(lambda s: s.LinkOauthAccount).returns(auth_pb2.LinkOauthAccountResponse())
    gw.auth.when(lambda s: s.CreateSession).returns(
        auth_pb2.CreateSessionResponse(session=session(), token="new.token")
    )
    gw.http.cookies.set("oauth_state", "st")
    gw.http.cookies.set("oauth_verifier", "ver")

    response = await gw.http.get("/auth/google/callback?code=c&state=st")

    assert response.status_code == 303, response.text
    assert response.headers["location"] == gw.settings.public_base_url
    cookie = set_cookies(response).get("session")
    assert cookie is not None
    assert cookie.startswith("session=new.token;")
    for name in ("oauth_state", "oauth_verifier"):
        expired = set_cookies(response).get(name)
        assert expired is not None
        assert "Max-Age=0" in expired
    gw.auth.verify(lambda s: s.HandleOauthCallback).called_once_with(
        auth_pb2.HandleOauthCallbackRequest(
            provider=auth_pb2.PROVIDER_GOOGLE,
            code="c",
            state="st",
            expected_state="st",
            code_verifier="ver",
        )
    )
    gw.user.verify(lambda s: s.CreateUser).called_once_with(
        user_pb2.CreateUserRequest(email="ann@example.com", name="Ann")
    )
    gw.auth.verify(lambda s: s.LinkOauthAccount).called_once_with(
        auth_pb2.LinkOauthAccountRequest(
            provider=auth_pb2.PROVIDER_GOOGLE, provider_user_id="g-1", user_id=USER_ID
        )
    )
    gw.auth.verify(lambda s: s.CreateSession).called_once_with(
        auth_pb2.CreateSessionRequest(user_id=USER_ID)
    )


async def test_a_callback_of_a_linked_account_only_creates_a_session(gw: Gateway) -> None:
    gw.auth.when(lambda s: s.HandleOauthCallback).returns(
        auth_pb2.HandleOauthCallbackResponse(
            identity=auth_pb2.OauthIdentity(provider_user_id="g-1"), user_id=USER_ID
        )
    )
    gw.auth.when(lambda s: s.CreateSession).returns(
        auth_pb2.CreateSessionResponse(session=session(), token="new.token")
    )
    response = await gw.http.get("/auth/google/callback?code=c&state=st")
    assert response.status_code == 303
    assert gw.user.all_calls() == []
    gw.auth.verify(lambda s: s.LinkOauthAccount).never_called()


# --- development login -------------------------------------------------------------------


async def test_dev_login_finds_the_user_and_sets_the_session_cookie(gw: Gateway) -> None:
    gw.user.when(lambda s: s.GetUserByEmail).returns(
        user_pb2.GetUserByEmailResponse(user=user_pb())
    )
    gw.auth.when(lambda s: s.CreateSession).returns(
        auth_pb2.CreateSessionResponse(session=session(), token="dev.token")
    )
    response = await gw.http.post(
        "/auth/dev/login", json={"email": "ann@example.com"}, headers=CSRF
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == USER_ID
    cookie = set_cookies(response).get("session")
    assert cookie is not None
    assert cookie.startswith("session=dev.token;")
    gw.user.verify(lambda s: s.CreateUser).never_called()


DEV_LOGIN_PROBES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "valid", {"json": {"email": "ann@example.com"}, "headers": CSRF}),
    ("POST", "no CSRF header", {"json": {"email": "ann@example.com"}}),
    ("POST", "invalid body", {"json": {"mail": 1}, "headers": CSRF}),
    ("POST", "not JSON", {"content": b"{", "headers": CSRF}),
    ("GET", "GET", {}),
    ("OPTIONS", "OPTIONS", {}),
    ("DELETE", "DELETE", {"headers": CSRF}),
]


@pytest.mark.parametrize(
    ("method", "probe"),
    [pytest.param(method, kwargs, id=case) for method, case, kwargs in DEV_LOGIN_PROBES],
)
async def test_dev_login_outside_local_is_a_route_that_does_not_exist(
    make_gateway: GatewayFactory, method: str, probe: dict[str, Any]
) -> None:
    """Whatever is sent, the answer is the one of a path no route has (``/auth/nosuch/login``:
    POST there is 405 as ``GET /auth/{provider}/login`` exists), CSRF and body unchecked."""

    def seen(response: httpx.Response, segment: str) -> tuple[int, str, dict[str, str]]:
        trace_id = response.headers["x-trace-id"]
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in {"x-trace-id", "content-length"}
        }
        return (
            response.status_code,
            response.text.replace(trace_id, "").replace(segment, "?"),
            headers,
        )

    async with make_gateway(environment="production") as gw:
        dev = await gw.http.request(method, "/auth/dev/login", **probe)
        missing = await gw.http.request(method, "/auth/nosuch/login", **probe)
        assert dev.status_code in {404, 405}, dev.text
        assert seen(dev, "dev") == seen(missing, "nosuch")
        assert "/auth/dev/login" not in (await gw.http.get("/openapi.json")).json()["paths"]
        assert gw.user.all_calls() == []
        assert gw.auth.all_calls() == []


# --- health, trace ids, OpenAPI ----------------------------------------------------------


async def test_healthz_answers_without_a_session(gw: Gateway) -> None:
    response = await gw.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_every_service_serves(gw: Gateway) -> None:
    response = await gw.http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "services": {"auth": "SERVING", "user": "SERVING", "dummy": "SERVING"},
    }


async def test_readyz_is_503_when_a_service_is_down(gw: Gateway) -> None:
    await gw.user.aclose()
    response = await gw.http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["services"]["user"] != "SERVING"
    assert body["services"]["auth"] == "SERVING"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.json"),
        ("GET", "/user/me"),
        ("GET", "/nowhere"),
        ("GET", "/entities?page_size=0"),
        ("POST", "/entities"),
        ("GET", "/auth/myspace/login"),
    ],
    ids=["healthz", "readyz", "openapi", "401", "404", "422", "403", "unknown-provider"],
)
async def test_every_response_has_a_trace_id(gw: Gateway, method: str, path: str) -> None:
    response = await gw.http.request(method, path)
    trace_id = response.headers["x-trace-id"]
    assert len(trace_id) == 32
    int(trace_id, 16)
    if response.status_code >= 400:
        assert response.json()["error"]["trace_id"] == trace_id


async def test_each_response_has_its_own_trace_id(gw: Gateway) -> None:
    first = await gw.http.get("/healthz")
    second = await gw.http.get("/healthz")
    assert first.headers["x-trace-id"] != second.headers["x-trace-id"]


ROUTES = {
    ("/auth/{provider}/login", "get"),
    ("/auth/{provider}/callback", "get"),
    ("/auth/dev/login", "post"),
    ("/user/me", "get"),
    ("/logout", "post"),
    ("/entities", "post"),
    ("/entities", "get"),
    ("/entities/{entity_id}", "get"),
    ("/entities/{entity_id}", "patch"),
    ("/entities/{entity_id}", "delete"),
    ("/healthz", "get"),
    ("/readyz", "get"),
}


async def test_the_openapi_document_lists_every_route_and_its_errors(gw: Gateway) -> None:
    document = (await gw.http.get("/openapi.json")).json()
    listed = {(path, method) for path, item in document["paths"].items() for method in item}
    assert listed == ROUTES
    error_ref = "#/components/schemas/ErrorResponse"
    for path, method in ROUTES - {("/healthz", "get"), ("/readyz", "get")}:
        responses = document["paths"][path][method]["responses"]
        assert "503" in responses, (path, method)
        schema = responses["503"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": error_ref}
    entity = document["paths"]["/entities/{entity_id}"]
    assert "404" in entity["get"]["responses"]
    assert entity["get"]["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": error_ref
    }
    assert "requestBody" in document["paths"]["/entities"]["post"]


@pytest.mark.parametrize(
    ("path", "method", "security"),
    [
        ("/user/me", "get", [{"session": []}]),
        ("/entities", "post", [{"session": [], "csrf": []}]),
        ("/entities/{entity_id}", "delete", [{"session": [], "csrf": []}]),
        ("/auth/dev/login", "post", [{"csrf": []}]),
        ("/auth/{provider}/login", "get", None),
        ("/healthz", "get", None),
    ],
    ids=["me", "create", "delete", "dev-login", "oauth-login", "healthz"],
)
async def test_the_openapi_document_says_which_routes_need_the_session_and_csrf_header(
    gw: Gateway, path: str, method: str, security: list[dict[str, list[str]]] | None
) -> None:
    document = (await gw.http.get("/openapi.json")).json()
    assert document["paths"][path][method].get("security") == security
    schemes = document["components"]["securitySchemes"]
    assert schemes["session"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "session",
        "description": "the session token, set by a login",
    }
    assert schemes["csrf"]["name"] == "X-Requested-With"


async def test_the_trace_id_is_the_request_spans_when_traced(grpc_mocks: GrpcMocks) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    auth = grpc_mocks.of(auth_pb2_grpc.AuthServiceStub)
    channel = grpc.aio.insecure_channel(auth.start())
    clients = Clients.on_channels(auth=channel, user=channel, dummy=channel, timeout=0.5)
    try:
        app = create_app(GatewaySettings(environment="local"), clients)
        install_tracing(app, provider)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/user/me")
    finally:
        await clients.close()
        provider.shutdown()
    assert response.status_code == 401
    trace_ids = {format(span.context.trace_id, "032x") for span in exporter.get_finished_spans()}
    assert trace_ids == {response.headers["x-trace-id"]}


async def test_downstream_calls_carry_the_responses_trace(grpc_mocks: GrpcMocks) -> None:
    provider = TracerProvider()
    auth = grpc_mocks.of(auth_pb2_grpc.AuthServiceStub)
    auth.when(lambda s: s.ValidateSession).fails(grpc.StatusCode.UNAUTHENTICATED, "unknown")
    channel = service_channel(auth.start(), tracer_provider=provider)
    clients = Clients.on_channels(auth=channel, user=channel, dummy=channel, timeout=0.5)
    try:
        app = create_app(GatewaySettings(environment="local"), clients)
        install_tracing(app, provider)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies={"session": TOKEN}
        ) as http:
            response = await http.get("/user/me")
    finally:
        await clients.close()
        provider.shutdown()
    assert response.status_code == 401
    call = auth.verify(lambda s: s.ValidateSession).called_once()
    traceparent = call.metadata_value("traceparent")
    assert isinstance(traceparent, str)
    assert traceparent.split("-")[1] == response.headers["x-trace-id"]


APP = "https://app.example.com"
EVIL = "https://evil.example.com"
PREFLIGHT_POST = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "X-Requested-With, Content-Type",
}


@dataclass(frozen=True)
class CorsCase:
    method: str
    path: str
    headers: dict[str, str]
    status: int
    allowed: bool  # the answer lets the origin's page read it (with cookies)
    error: str | None = None  # the error code of the answer, if any
    mentions: str = ""  # what the error message names


CORS_CASES = {
    "simple from the allowed origin": CorsCase("GET", "/healthz", {"Origin": APP}, 200, True),
    "simple from a foreign origin": CorsCase("GET", "/healthz", {"Origin": EVIL}, 200, False),
    "an error to the allowed origin": CorsCase(
        "GET", "/user/me", {"Origin": APP}, 401, True, "unauthenticated"
    ),
    "a state change from a foreign origin": CorsCase(
        "POST", "/logout", {"Origin": EVIL}, 403, False, "csrf_header_missing"
    ),
    "preflight from the allowed origin": CorsCase(
        "OPTIONS", "/entities", {"Origin": APP, **PREFLIGHT_POST}, 204, True
    ),
    "preflight, headers in any case": CorsCase(
        "OPTIONS",
        "/entities/1",
        {
            "Origin": APP,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "x-requested-with",
        },
        204,
        True,
    ),
    "preflight from a foreign origin": CorsCase(
        "OPTIONS",
        "/entities",
        {"Origin": EVIL, **PREFLIGHT_POST},
        403,
        False,
        "cors_preflight_refused",
        EVIL,
    ),
    "preflight from the null origin": CorsCase(
        "OPTIONS",
        "/entities",
        {"Origin": "null", **PREFLIGHT_POST},
        403,
        False,
        "cors_preflight_refused",
        "null",
    ),
    "preflight, a method not allowed": CorsCase(
        "OPTIONS",
        "/entities",
        {"Origin": APP, "Access-Control-Request-Method": "PUT"},
        403,
        False,
        "cors_preflight_refused",
        "PUT",
    ),
    "preflight, a header not allowed": CorsCase(
        "OPTIONS",
        "/entities",
        {
            **PREFLIGHT_POST,
            "Origin": APP,
            "Access-Control-Request-Headers": "X-Requested-With, X-Evil",
        },
        403,
        False,
        "cors_preflight_refused",
        "X-Evil",
    ),
    "OPTIONS that is not a preflight goes to the routes": CorsCase(
        "OPTIONS", "/healthz", {"Origin": APP}, 405, True, "method_not_allowed"
    ),
}


@pytest.mark.parametrize("case", list(CORS_CASES.values()), ids=list(CORS_CASES))
async def test_cors_lets_only_the_configured_origins_read_and_refuses_in_the_error_shape(
    make_gateway: GatewayFactory, case: CorsCase
) -> None:
    async with make_gateway(cors_origins=[APP]) as gw:
        response = await gw.http.request(case.method, case.path, headers=case.headers)
        if case.error is None:
            assert response.status_code == case.status, response.text
        else:
            error = assert_error(response, case.status, case.error)
            assert case.mentions in error["message"]
        assert "x-trace-id" in response.headers
        assert "Origin" in response.headers.get("vary", "")
        cors = {
            name: value
            for name, value in response.headers.items()
            if name.startswith("access-control-")
        }
        if not case.allowed:
            assert cors == {}
            return
        assert cors["access-control-allow-origin"] == case.headers["Origin"]
        assert cors["access-control-allow-credentials"] == "true"
        if case.method == "OPTIONS" and case.status == 204:
            assert (
                case.headers["Access-Control-Request-Method"]
                in cors["access-control-allow-methods"]
            )
            assert "X-Requested-With" in cors["access-control-allow-headers"]
        else:
            assert "X-Trace-Id" in cors["access-control-expose-headers"]
        if case.status == 204:
            gw.auth.verify(lambda s: s.ValidateSession).never_called()


async def test_no_origin_no_cors_headers(make_gateway: GatewayFactory) -> None:
    async with make_gateway(cors_origins=[APP]) as gw:
        response = await gw.http.get("/healthz")
        assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_a_preflight_with_two_origins_is_refused(make_gateway: GatewayFactory) -> None:
    async with make_gateway(cors_origins=[APP]) as gw:
        headers = [("origin", APP), ("origin", APP), *PREFLIGHT_POST.items()]
        response = await gw.http.options("/entities", headers=headers)
        assert_error(response, 403, "cors_preflight_refused")
        assert "access-control-allow-origin" not in response.headers


# --- more edges of login, logout and settings --------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [None, grpc.StatusCode.UNAUTHENTICATED],
    ids=["deleted", "already-gone"],
)
async def test_logout_always_expires_the_cookie(
    logged_in: Gateway, answer: grpc.StatusCode | None
) -> None:
    behaviour = logged_in.auth.when(lambda s: s.DeleteSession)
    if answer is None:
        behaviour.returns(auth_pb2.DeleteSessionResponse())
    else:
        behaviour.fails(answer, "gone")
    response = await logged_in.http.post("/logout", headers=CSRF)
    assert response.status_code == 204
    cookie = set_cookies(response).get("session")
    assert cookie is not None
    assert "Max-Age=0" in cookie


async def test_a_login_the_user_refused_is_403(gw: Gateway) -> None:
    response = await gw.http.get("/auth/google/callback?error=access_denied&state=st")
    assert_error(response, 403, "oauth_refused")
    assert gw.auth.all_calls() == []


async def test_a_user_created_concurrently_is_found_again(gw: Gateway) -> None:
    gw.user.when(lambda s: s.GetUserByEmail).fails(
        grpc.StatusCode.NOT_FOUND, "none"
    ).then().returns(user_pb2.GetUserByEmailResponse(user=user_pb()))
    gw.user.when(lambda s: s.CreateUser).fails(grpc.StatusCode.ALREADY_EXISTS, "taken")
    gw.auth.when(lambda s: s.CreateSession).returns(
        auth_pb2.CreateSessionResponse(session=session(), token="dev.token")
    )
    response = await gw.http.post(
        "/auth/dev/login", json={"email": "ann@example.com"}, headers=CSRF
    )
    assert response.status_code == 200, response.text
    gw.user.verify(lambda s: s.GetUserByEmail).called_times(2)


def test_settings_come_from_gateway_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "local")
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", '["https://app.example.com"]')
    monkeypatch.setenv("GATEWAY_DUMMY_ADDRESS", "dummy:50053")
    settings = GatewaySettings()
    assert settings.is_local
    assert settings.cors_origins == ["https://app.example.com"]
    assert settings.dummy_address == "dummy:50053"


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://App.example.com",
        "app.example.com",
        "ftp://app.example.com",
    ],
    ids=["wildcard", "trailing-slash", "path", "upper-case", "no-scheme", "other-scheme"],
)
def test_a_cors_origin_that_no_browser_sends_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, origin: str
) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", json.dumps([origin]))
    with pytest.raises(ValidationError, match="is not an origin"):
        GatewaySettings()


def test_cors_origins_with_ports_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    origins = ["http://localhost:5173", "https://app.example.com"]
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", json.dumps(origins))
    assert GatewaySettings().cors_origins == origins


def test_the_environment_defaults_to_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_ENVIRONMENT", raising=False)
    assert GatewaySettings().environment == "production"


PUBLIC_ROUTES = {
    ("/auth/{provider}/login", "get"),
    ("/auth/{provider}/callback", "get"),
    ("/auth/dev/login", "post"),
    ("/healthz", "get"),
    ("/readyz", "get"),
}


@pytest.mark.parametrize(
    ("path", "method"),
    sorted(ROUTES - PUBLIC_ROUTES),
    ids=[f"{method.upper()} {path}" for path, method in sorted(ROUTES - PUBLIC_ROUTES)],
)
async def test_every_route_documented_as_needing_the_session_refuses_without_one(
    gw: Gateway, path: str, method: str
) -> None:
    document = (await gw.http.get("/openapi.json")).json()
    (requirement,) = document["paths"][path][method]["security"]
    assert "session" in requirement
    assert ("csrf" in requirement) is (method != "get")
    url = path.replace("{entity_id}", ENTITY_ID)
    response = await gw.http.request(method.upper(), url, json={"name": "x"}, headers=CSRF)
    assert_error(response, 401, "unauthenticated")
