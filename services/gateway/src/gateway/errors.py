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
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from pydantic import BaseModel

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


def from_grpc(error: grpc.aio.AioRpcError) -> ApiError:
    """The HTTP error for a failed downstream call (the one mapping)."""
    status, code = GRPC_TO_HTTP.get(error.code(), _OTHER)
    if status >= 500:
        logger.warning("downstream call failed: %s %s", error.code().name, error.details())
        return ApiError(status, code, _SERVER_MESSAGES[status])
    return ApiError(status, code, error.details() or code.replace("_", " "))


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
