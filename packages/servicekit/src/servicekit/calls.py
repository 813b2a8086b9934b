"""What happens around every RPC a service answers: its span, its status, its log line.

Each unary handler is wrapped once, when the servicers are registered
(:class:`WrappingRegistrar`), instead of by ``grpc.aio`` server interceptors: an
interceptor runs again for every call (an extra coroutine, a handler object built
per call), and the kit had three of them. The wrapped handler, per call:

1. continues the caller's trace from its ``traceparent`` metadata (W3C trace
   context, through the configured propagator) in a SERVER span named
   ``/<package.Service>/<Method>`` with ``rpc.system``, ``rpc.service``,
   ``rpc.method`` and ``rpc.grpc.status_code``;
2. deserializes the request itself, so a request that does not parse (bad wire
   format, invalid UTF-8 in a string) is INVALID_ARGUMENT, not grpc's INTERNAL;
3. maps failures to status in the one place (STYLE.md, errors): a
   :class:`~servicekit.errors.ServiceError` becomes its kind's status and message,
   a database failure that escaped its repository the status
   :func:`~servicekit.postgres.storage_failure` gives it; anything else is a bug,
   logged with its traceback and answered INTERNAL without details. Each of these
   statuses carries the call's outcome in the trailing metadata ``kit-outcome``
   (``failed``, or ``unknown`` for a write whose connection was lost after it was sent
   and for INTERNAL: see :mod:`servicekit.errors`). Codes the
   OpenTelemetry conventions count as server errors (INTERNAL, UNKNOWN, UNAVAILABLE,
   DEADLINE_EXCEEDED, UNIMPLEMENTED, DATA_LOSS) set the span's status to ERROR, the
   others (NOT_FOUND, INVALID_ARGUMENT...) only the attribute;
4. logs one access line (method, code, duration; inside the span, so it carries the
   trace id) for server-error codes and calls slower than ``slow_call_seconds``
   always, and for every call when ``access_log`` is on (the harness turns it on:
   its reports show each service's calls).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from servicekit.errors import (
    OUTCOME_FAILED,
    OUTCOME_KEY,
    OUTCOME_UNKNOWN,
    ServiceError,
    StorageUnavailable,
    outcome_of,
    status_of,
)
from servicekit.postgres import storage_failure

if TYPE_CHECKING:
    # grpc-stubs makes these generic; at run time they are plain classes.
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    MethodHandler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    GenericHandler: TypeAlias = grpc.GenericRpcHandler[Any, Any]
    _GenericHandlerBase: TypeAlias = grpc.GenericRpcHandler[Any, Any]
else:
    GenericHandler = Any
    MethodHandler = Any
    _GenericHandlerBase = grpc.GenericRpcHandler

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("servicekit.access")

Behavior: TypeAlias = Callable[[Any, "Context"], Awaitable[Any]]

# Status codes the OpenTelemetry RPC conventions count as the server's fault.
SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


@dataclass(frozen=True)
class CallPolicy:
    """How the calls of a server are observed (from the service's settings)."""

    access_log: bool = False  # a line per call; off: only server errors and slow calls
    slow_call_seconds: float = 1.0  # a call at least this slow is always logged


def wrap_handler(
    method: str,
    handler: MethodHandler,
    *,
    tracer: trace.Tracer,
    policy: CallPolicy,
) -> MethodHandler:
    """``handler`` of ``method`` (``/package.Service/Method``) with the steps of the module
    docstring around it. Only unary-unary handlers are wrapped; others pass through."""
    if handler.unary_unary is None:
        return handler
    # grpc-stubs types handlers with the sync context; on an aio server they get the aio one.
    inner: Behavior = handler.unary_unary  # type: ignore[assignment]
    deserialize: Callable[[bytes], Any] | None = handler.request_deserializer
    service, _, name = method.lstrip("/").partition("/")
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
    log_every_call = policy.access_log
    slow_seconds = policy.slow_call_seconds

    async def behavior(raw_request: bytes, context: Context) -> Any:
        started = time.perf_counter()
        parent = propagate.extract(_metadata_of(context))
        span = tracer.start_span(method, parent, SpanKind.SERVER, attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        code = grpc.StatusCode.OK
        try:
            try:
                request = deserialize(raw_request) if deserialize else raw_request
            except Exception as error:
                code = grpc.StatusCode.INVALID_ARGUMENT
                await context.abort(
                    code,
                    f"the request is not a valid message for {method}: {type(error).__name__}",
                    _FAILED,
                )
            try:
                return await inner(request, context)
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN  # the handler chose it
                raise
            except ServiceError as error:
                code, details = status_of(error)
                await context.abort(code, details, _outcome(error))
            except Exception as error:
                # A database failure a repository let through still has its meaning. A
                # refused value changed nothing; after a lost connection nobody here can
                # tell whether a write was sent (storage_write can).
                if (failure := storage_failure(error)) is not None:
                    code, details = status_of(failure)
                    logger.warning(
                        "%s in %s: %s: %s", code.name, method, type(error).__name__, error
                    )
                    lost = isinstance(failure, StorageUnavailable)
                    await context.abort(code, details, _UNKNOWN if lost else _FAILED)
                code = grpc.StatusCode.INTERNAL
                logger.exception("unexpected error in %s", method)
                # The client only learns "internal error"; the trace keeps the cause.
                span.record_exception(error)
                await context.abort(code, "internal error", _UNKNOWN)
        except BaseException:
            if code is grpc.StatusCode.OK:  # cancelled, or escaped the mapping above
                code = grpc.StatusCode.CANCELLED
            raise
        finally:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in SERVER_ERROR_CODES:
                span.set_status(Status(StatusCode.ERROR, code.name))
            duration = time.perf_counter() - started
            if log_every_call or duration >= slow_seconds or code in SERVER_ERROR_CODES:
                _log_call(method, code, duration)
            otel_context.detach(token)
            span.end()

    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=None,  # raw bytes: see behavior
        response_serializer=handler.response_serializer,
    )


_FAILED = ((OUTCOME_KEY, OUTCOME_FAILED),)
_UNKNOWN = ((OUTCOME_KEY, OUTCOME_UNKNOWN),)


def _outcome(error: ServiceError) -> tuple[tuple[str, str], ...]:
    return _UNKNOWN if outcome_of(error) == OUTCOME_UNKNOWN else _FAILED


def _metadata_of(context: Context) -> dict[str, str]:
    metadata = context.invocation_metadata() or ()
    return {key: value for key, value in metadata if isinstance(value, str)}


def _log_call(method: str, code: grpc.StatusCode, duration: float) -> None:
    duration_ms = duration * 1000
    level = logging.WARNING if code in SERVER_ERROR_CODES else logging.INFO
    access_logger.log(
        level,
        "%s %s %.1fms",
        method,
        code.name,
        duration_ms,
        extra={"rpc_method": method, "grpc_code": code.name, "duration_ms": round(duration_ms, 3)},
    )


class _WrappedGenericHandler(_GenericHandlerBase):
    """A generic handler whose method handlers are wrapped (once per method, then cached)."""

    def __init__(self, inner: GenericHandler, wrap: Callable[[str, Any], Any]) -> None:
        self._inner = inner
        self._wrap = wrap
        self._cache: dict[str, Any] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        if method not in self._cache:
            handler = self._inner.service(handler_call_details)
            self._cache[method] = None if handler is None else self._wrap(method, handler)
        return self._cache[method]


class WrappingRegistrar:
    """Stands in for the server while generated ``add_*Servicer_to_server`` functions
    register a servicer, wrapping every method handler (:func:`wrap_handler`)."""

    def __init__(self, server: grpc.aio.Server, *, tracer: trace.Tracer, policy: CallPolicy):
        self._server = server
        self._tracer = tracer
        self._policy = policy

    def _wrap(self, method: str, handler: MethodHandler) -> MethodHandler:
        return wrap_handler(method, handler, tracer=self._tracer, policy=self._policy)

    def add_generic_rpc_handlers(self, handlers: Iterable[GenericHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_WrappedGenericHandler(handler, self._wrap) for handler in handlers)
        )

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, MethodHandler]
    ) -> None:
        wrapped = {name: self._wrap(f"/{service}/{name}", h) for name, h in handlers.items()}
        self._server.add_registered_method_handlers(service, wrapped)  # type: ignore[attr-defined]


def registrar_for(
    server: grpc.aio.Server,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    policy: CallPolicy | None = None,
) -> grpc.aio.Server:
    """What to hand to ``add_*Servicer_to_server`` instead of ``server`` (typed as a server,
    which is all the generated functions need of it)."""
    tracer = trace.get_tracer("servicekit.calls", tracer_provider=tracer_provider)
    registrar = WrappingRegistrar(server, tracer=tracer, policy=policy or CallPolicy())
    return registrar  # type: ignore[return-value]


__all__: Sequence[str] = [
    "SERVER_ERROR_CODES",
    "CallPolicy",
    "WrappingRegistrar",
    "registrar_for",
    "wrap_handler",
]
