"""The session cookie (missing, ambiguous, refreshed, its flags) and the CSRF header."""

from __future__ import annotations

import grpc
import httpx
import pytest

from auth import auth_pb2
from fixtures.gateway import CSRF, assert_error, set_cookies
from gateway.app import create_app
from gateway.clients import Clients
from user import user_pb2

from .support import (
    ENTITY_ID,
    TOKEN,
    USER_ID,
    Gateway,
    GatewayFactory,
    user_pb,
)

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
