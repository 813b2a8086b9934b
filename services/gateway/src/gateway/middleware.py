"""ASGI middleware: the trace id of every response, and the request body size limit.

:class:`TraceIdMiddleware` stores the trace id in ``scope["state"]["trace_id"]`` (so
error handlers can put it in the body) and adds ``X-Trace-Id`` to every response. The
id is the current OpenTelemetry span's (gateway.tracing's middleware wraps this
middleware), else a random one of the same form (32 hex digits).

:class:`BodySizeLimitMiddleware` answers 413 when ``Content-Length`` is above the limit,
or when a body without it (chunked) grows beyond it.
"""

from __future__ import annotations

import uuid

from opentelemetry import trace
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import TRACE_ID_HEADER, error_body


def current_trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return trace.format_trace_id(context.trace_id)
    return uuid.uuid4().hex


def trace_id_of(scope: Scope) -> str:
    state = scope.get("state") or {}
    trace_id = state.get("trace_id")
    return trace_id if isinstance(trace_id, str) else current_trace_id()


class TraceIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_id = current_trace_id()
        scope.setdefault("state", {})["trace_id"] = trace_id

        async def send_with_trace_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[TRACE_ID_HEADER] = trace_id
            await send(message)

        await self.app(scope, receive, send_with_trace_id)


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_body_bytes:
                    await self._too_large(scope, receive, send)
                    return
        received = 0
        too_large = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Whatever the app makes of a vanished client (FastAPI: a 400), the
                    # answer is replaced by the 413 below.
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await self._too_large(scope, receive, send)

        await self.app(scope, counting_receive, guarded_send)
        if too_large and not answered:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than {self.max_body_bytes} bytes"
        response = JSONResponse(
            error_body("payload_too_large", message, trace_id_of(scope)), status_code=413
        )
        await response(scope, receive, send)
