"""The FastAPI application: routes, middleware and error handlers, on injected clients.

Nothing here runs at import: :func:`create_app` builds an app for given settings and
clients (tests pass clients on channels to generated mocks; ``main`` real ones).
"""

from __future__ import annotations

import logging

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gateway.clients import Clients
from gateway.cors import CorsMiddleware
from gateway.deps import CSRF_HEADER
from gateway.errors import TRACE_ID_HEADER, ApiError, error_body, from_grpc
from gateway.middleware import BodySizeLimitMiddleware, TraceIdMiddleware, trace_id_of
from gateway.openapi import install_openapi
from gateway.routes import auth, entities, health, users
from gateway.sessions import reissue_refreshed_cookie
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


def _error(request: Request, status: int, code: str, message: str) -> JSONResponse:
    trace_id = trace_id_of(request.scope)
    response = JSONResponse(
        error_body(code, message, trace_id),
        status_code=status,
        headers={TRACE_ID_HEADER: trace_id},
    )
    reissue_refreshed_cookie(request, response)
    return response


async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    response = _error(request, error.status_code, error.code, error.message)
    response.headers.update(error.headers)
    return response


# Methods that ask for a change: a downstream failure may leave its outcome unknown.
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _grpc_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, grpc.aio.AioRpcError)
    return await _api_error(request, from_grpc(error, change=request.method in _CHANGES))


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "request"


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = "; ".join(
        f"{_location(tuple(item.get('loc', ())))}: {item.get('msg', 'invalid')}"
        for item in error.errors()
    )
    return _error(request, 422, "validation_failed", problems or "the request is invalid")


# Starlette's own errors: 400 is a body it could not decode (e.g. JSON that is not UTF-8).
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


# The methods a 405 may name: HTTP's own, as routes are matched with each in turn.
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path. Starlette's 405 names only the first
    route whose path matches: ``/auth/dev/login`` (POST) also matches
    ``/auth/{provider}/login`` (GET), and the answer must list both. Asked through the
    routes' own matching, so included routers and path converters count as they do
    when a request is routed."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    )


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    response = _error(request, error.status_code, code, str(error.detail))
    response.headers.update(error.headers or {})
    if error.status_code == 405:
        response.headers["Allow"] = _allowed_methods(request)
    return response


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=error)
    return _error(request, 500, "internal", "the gateway failed; quote the trace id")


def create_app(settings: GatewaySettings, clients: Clients) -> FastAPI:
    app = FastAPI(
        # FastAPI's own telemetry off: the gateway's one span per request (and its
        # access log) is gateway.tracing's middleware, installed by main.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        title="Gateway",
        version="1.0.0",
        description=(
            "The HTTP API of the backend. Every route but health, login and callback needs "
            "the session cookie; POST, PATCH and DELETE need the "
            f"`{CSRF_HEADER}` header. Errors: "
            '`{"error": {"code", "message", "trace_id"}}`; every response carries '
            f"`{TRACE_ID_HEADER}`."
        ),
    )
    app.state.settings = settings
    app.state.clients = clients
    for router in (auth.router, users.router, entities.router, health.router):
        app.include_router(router)
    if settings.is_local:
        app.include_router(auth.dev_router)
    install_openapi(app, settings)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(grpc.aio.AioRpcError, _grpc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    # The last added is the outermost: the trace id wraps everything, even a 413.
    app.add_middleware(
        CorsMiddleware,
        allowed_origins=settings.cors_origins,
        allowed_methods=["GET", "POST", "PATCH", "DELETE"],
        allowed_headers=["Content-Type", CSRF_HEADER],
        exposed_headers=[TRACE_ID_HEADER, "Location"],
    )
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(TraceIdMiddleware)
    return app
