"""Errors of the gateway: the one gRPC -> HTTP mapping, and the one JSON error shape.

Every error response has the body ``{"error": {"code", "message", "trace_id"}}``
(:class:`ErrorResponse`) and the ``X-Trace-Id`` header.

Hierarchy::

    ApiError                 an HTTP error with a stable machine-readable ``code``
    grpc.aio.AioRpcError     a downstream call failed: mapped by :func:`from_grpc`

gRPC status -> HTTP (:data:`GRPC_TO_HTTP`):

    INVALID_ARGUMENT      400 invalid_argument   (the message names the field; passed on)
    UNAUTHENTICATED       401 unauthenticated
    PERMISSION_DENIED     403 permission_denied
    NOT_FOUND             404 not_found
    ALREADY_EXISTS        409 already_exists
    FAILED_PRECONDITION   409 failed_precondition (the request is well formed but the
                          state of the system refuses it, e.g. an owner that is not a user;
                          retrying the same request will not help, as for a conflict)
    UNAVAILABLE           503 unavailable
    DEADLINE_EXCEEDED     504 deadline_exceeded
    anything else         502 bad_gateway         (no downstream detail is passed on)

Only the 4xx codes pass the downstream message on; 5xx answers say nothing of the inside.

**A change whose outcome is unknown** (:func:`from_grpc` with ``change=True``: the
request's method is POST, PUT, PATCH or DELETE): a 5xx answer says whether the change
may have been made, since a client must not take "503" for "nothing happened" when it
did happen. The status stays (503, 504, 502) and ``code`` becomes ``outcome_unknown``
unless the failure is known to be definite:

- the service answered the status itself and its ``kit-outcome`` trailing metadata is
  ``failed`` (servicekit.errors: the RPC changed nothing) -> the plain code above;
- its ``kit-outcome`` is ``unknown``: ``outcome_unknown``; for UNAVAILABLE (its
  database connection was lost after the write was sent) with the service's message,
  which says what to do (``retry with the same request_id`` for a create), otherwise
  (INTERNAL: a bug) the gateway's;
- no ``kit-outcome``: the transport failed. The call never left when gRPC could not
  connect at all (UNAVAILABLE "failed to connect to all addresses", or "connections to
  all backends failing" with round_robin): the plain code;
  anything else (a connection reset mid-call, the gateway's deadline running out, a
  service killed mid-call) may have been done -> ``outcome_unknown``.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from pydantic import BaseModel

from servicekit.errors import OUTCOME_FAILED, OUTCOME_KEY, OUTCOME_UNKNOWN

logger = logging.getLogger(__name__)

TRACE_ID_HEADER = "X-Trace-Id"


class ErrorDetail(BaseModel):
    code: str
    message: str
    trace_id: str


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """An HTTP error answered with :class:`ErrorResponse`."""

    def __init__(
        self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers or {}


GRPC_TO_HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_argument"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "unauthenticated"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_denied"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "already_exists"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "failed_precondition"),
    grpc.StatusCode.UNAVAILABLE: (503, "unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "deadline_exceeded"),
}
_OTHER = (502, "bad_gateway")
_SERVER_MESSAGES = {
    503: "a service the gateway depends on is unavailable; retry later",
    504: "a service the gateway depends on did not answer in time",
    502: "a service the gateway depends on failed",
}
OUTCOME_UNKNOWN_CODE = "outcome_unknown"
_OUTCOME_UNKNOWN_MESSAGE = (
    "the change may or may not have been made (outcome unknown); retry it: a retry of "
    "POST /entities with the same request_id, of PATCH or of DELETE is safe"
)
# grpc core's details when no connection could be made, so the call was never sent:
# pick_first's, and round_robin's (the kit's channels) when every backend is failing.
_NEVER_SENT = ("failed to connect to all addresses", "connections to all backends failing")


def from_grpc(error: grpc.aio.AioRpcError, *, change: bool = False) -> ApiError:
    """The HTTP error for a failed downstream call (the one mapping). ``change``: the
    request asked for a change (module docstring: an unknown outcome is said)."""
    status, code = GRPC_TO_HTTP.get(error.code(), _OTHER)
    if status < 500:
        return ApiError(status, code, error.details() or code.replace("_", " "))
    logger.warning("downstream call failed: %s %s", error.code().name, error.details())
    if change:
        outcome = _outcome_of(error)
        if outcome == OUTCOME_UNKNOWN and error.code() == grpc.StatusCode.UNAVAILABLE:
            # servicekit's WriteOutcomeUnknown: its message says what to do, and no more
            return ApiError(status, OUTCOME_UNKNOWN_CODE, error.details() or "outcome unknown")
        if outcome == OUTCOME_UNKNOWN or (
            outcome is None
            and not (
                error.code() == grpc.StatusCode.UNAVAILABLE
                and (error.details() or "").startswith(_NEVER_SENT)
            )
        ):
            return ApiError(status, OUTCOME_UNKNOWN_CODE, _OUTCOME_UNKNOWN_MESSAGE)
    return ApiError(status, code, _SERVER_MESSAGES[status])


def _outcome_of(error: grpc.aio.AioRpcError) -> str | None:
    # grpc-stubs type it as the sync API's tuple; grpc.aio gives its Metadata mapping.
    metadata: Any = error.trailing_metadata()
    value = metadata.get(OUTCOME_KEY) if metadata else None
    return value if value in (OUTCOME_FAILED, OUTCOME_UNKNOWN) else None


def error_body(code: str, message: str, trace_id: str) -> dict[str, Any]:
    return ErrorResponse(
        error=ErrorDetail(code=code, message=message, trace_id=trace_id)
    ).model_dump()


_DESCRIPTIONS = {
    400: "Invalid argument (a downstream service refused a field)",
    401: "No valid session",
    403: "Forbidden (CSRF header missing, or the provider refused the login)",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    422: "Request validation failed (bad JSON, wrong types, bad parameters)",
    502: "A downstream service failed",
    503: "A downstream service is unavailable",
    504: "A downstream service timed out",
}

DOWNSTREAM = (502, 503, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status documented with :class:`ErrorResponse`."""
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in sorted({*statuses, *DOWNSTREAM})
    }
