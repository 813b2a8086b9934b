"""How the gateway turns gRPC failures into HTTP errors: the status table, changes of
unknown outcome, stopped and slow services."""

from __future__ import annotations

import time

import grpc
import pytest

from dummy import dummy_pb2
from fixtures.gateway import CSRF, assert_error

from .support import (
    ENTITY_ID,
    OTHER_USER,
    Gateway,
    GatewayFactory,
    entity_pb,
)

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
