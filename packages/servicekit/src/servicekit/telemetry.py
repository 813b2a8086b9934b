"""OpenTelemetry tracing of a service: its provider, gRPC and asyncpg instrumentation.

Set up at start-up by the runner (the composition root); nothing happens at import.

- :func:`start_telemetry` builds a ``TracerProvider`` whose resource says
  ``service.name=<service>``. When the environment names an OTLP endpoint, finished
  spans are batched and exported over OTLP/gRPC; otherwise nothing is exported, but
  spans (and so trace ids in the log lines) still exist.
  :meth:`Telemetry.install` makes it the process's provider and traces asyncpg;
  :meth:`Telemetry.shutdown` flushes what is left, within a bounded time.
- :func:`server_interceptors`: a SERVER span per RPC (named ``/<package.Service>/<Method>``,
  with ``rpc.system``, ``rpc.service``, ``rpc.method`` and ``rpc.grpc.status_code``),
  continuing the caller's trace from the ``traceparent`` metadata (W3C trace
  context), and one access-log line per RPC logged inside it. They go *before*
  :class:`~servicekit.server.ErrorMappingInterceptor`, so the span sees the status the
  error mapping chose: codes the OpenTelemetry conventions count as server errors
  (INTERNAL, UNKNOWN, UNAVAILABLE, DEADLINE_EXCEEDED, UNIMPLEMENTED, DATA_LOSS) set the
  span's status to ERROR, the others (NOT_FOUND, INVALID_ARGUMENT...) only the attribute.
- :func:`client_interceptors`: a CLIENT span per outgoing call, and the ``traceparent``
  it sends. A service calling another service builds its channel with them (without,
  the callee starts a new trace)::

      channel = service_channel(address, interceptors=client_interceptors())
      # or grpc.aio.insecure_channel(address, interceptors=client_interceptors())

- :func:`instrument_asyncpg`: a CLIENT span per query (named after the SQL verb, with
  ``db.system``, ``db.name``, ``db.statement``; parameters are not recorded), a child
  of whatever span is current, the RPC's when a handler queries. The reset the pool
  runs on every released connection is left out.

Health checks and reflection are not traced (the harness and orchestrators poll them).

Environment (the standard OpenTelemetry variables; the SDK and exporter read the rest):

- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``: the OTLP/gRPC
  receiver, e.g. ``http://127.0.0.1:4317`` (``http`` means no TLS). Unset: no export.
- ``OTEL_BSP_SCHEDULE_DELAY``: milliseconds a finished span waits before its batch is
  sent; default here 100 (the SDK's 5000 would keep a test waiting for its trace).
- ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``, ``..._INSECURE``, ``..._CERTIFICATE``,
  ``OTEL_TRACES_SAMPLER`` (default: parent-based, always on), ``OTEL_SDK_DISABLED``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import asyncpg
import grpc
import wrapt
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.utils import suppress_instrumentation, unwrap
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

if TYPE_CHECKING:
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    ServerInterceptor: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
    ClientInterceptor: TypeAlias = grpc.aio.ClientInterceptor
    _ServerInterceptorBase: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptorBase = grpc.aio.ServerInterceptor

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("servicekit.access")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SCHEDULE_DELAY_VARIABLE = "OTEL_BSP_SCHEDULE_DELAY"
DEFAULT_SCHEDULE_DELAY_MILLIS = 100

# Polled by the harness, load balancers and orchestrators: a span or a log line per
# poll would bury the calls that matter.
UNTRACED_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def is_traced(method: str | bytes) -> bool:
    """Whether calls of ``method`` (``/package.Service/Method``) get spans and access logs."""
    if isinstance(method, bytes):  # grpc.aio clients may hand the method over as bytes
        method = method.decode()
    service = method.lstrip("/").partition("/")[0]
    return service not in UNTRACED_SERVICES


def _call_is_traced(details: Any) -> bool:
    return is_traced(getattr(details, "method", "") or "")


def otlp_endpoint(environ: Mapping[str, str]) -> str | None:
    """The OTLP endpoint spans go to, or None when the environment names none."""
    for variable in ENDPOINT_VARIABLES:
        if environ.get(variable, "").strip():
            return environ[variable].strip()
    return None


@dataclass
class Telemetry:
    """The tracing of one process: its provider, and what to undo at the end."""

    service: str
    tracer_provider: TracerProvider
    endpoint: str | None  # where spans are exported; None: nowhere (or a given exporter)
    _exporter: SpanExporter | None = field(default=None, repr=False)
    _undo: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def install(self) -> None:
        """Make this the process's provider and trace asyncpg with it (once per process).

        The global provider serves code that asks ``trace.get_tracer(__name__)`` and the
        interceptors built without an explicit provider. A second service started in the
        same process keeps the first one's (with a warning): both are process-wide.
        """
        current = trace.get_tracer_provider()
        if isinstance(current, trace.ProxyTracerProvider):
            trace.set_tracer_provider(self.tracer_provider)
        elif current is not self.tracer_provider:
            logger.warning("a tracer provider is already installed in this process; kept")
        try:
            self._undo.append(instrument_asyncpg(self.tracer_provider))
        except AlreadyInstrumented:
            logger.warning("asyncpg is already traced in this process, by another provider")

    def shutdown(self, timeout_seconds: float = 5.0) -> bool:
        """Export the spans still buffered and stop; give up after ``timeout_seconds``.

        Bounded because an unreachable receiver would otherwise hold a stopping service
        for the exporter's whole retry budget (``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s).
        Returns whether everything buffered was handed to the exporter in time.
        """
        while self._undo:
            self._undo.pop()()
        worker = threading.Thread(
            target=self.tracer_provider.shutdown, name="telemetry-shutdown", daemon=True
        )
        worker.start()
        worker.join(timeout_seconds)
        if not worker.is_alive():
            return True
        logger.warning(
            "spans not exported within %ss at shutdown; dropped (is %s reachable?)",
            timeout_seconds,
            self.endpoint,
        )
        if self._exporter is not None:
            self._exporter.shutdown()  # ends the exporter's retries, so the worker ends too
        return False


def start_telemetry(
    service: str,
    *,
    environ: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
) -> Telemetry:
    """A provider for ``service``, exporting to ``exporter`` or to the environment's endpoint.

    Nothing global changes here (tests keep their providers local); the runner calls
    :meth:`Telemetry.install` on the result.
    """
    environ = os.environ if environ is None else environ
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}),
        shutdown_on_exit=False,  # the owner shuts it down, with a bound (see shutdown)
    )
    endpoint = None
    if exporter is None:
        endpoint = otlp_endpoint(environ)
        if endpoint is not None:
            exporter = OTLPSpanExporter(endpoint=endpoint)
    if exporter is not None:
        provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=_schedule_delay_millis(environ))
        )
    return Telemetry(service, provider, endpoint, exporter)


def _schedule_delay_millis(environ: Mapping[str, str]) -> float:
    raw = environ.get(SCHEDULE_DELAY_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_SCHEDULE_DELAY_MILLIS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"{SCHEDULE_DELAY_VARIABLE} must be a positive number of ms, not {raw!r}")
    return value


def server_interceptors(
    tracer_provider: trace.TracerProvider | None = None,
) -> list[ServerInterceptor]:
    """The interceptors to put first on a grpc.aio server, in this order.

    ``tracer_provider`` None means the global one (a no-op until one is installed).
    """
    tracing = cast(
        "ServerInterceptor",
        aio_server_interceptor(tracer_provider=tracer_provider, filter_=_call_is_traced),  # type: ignore[no-untyped-call]
    )
    return [tracing, AccessLogInterceptor()]


def client_interceptors(
    tracer_provider: trace.TracerProvider | None = None,
) -> list[ClientInterceptor]:
    """Interceptors for a grpc.aio channel to another service: spans and ``traceparent``.

    ``tracer_provider`` None means the global one, which the runner installs.
    """
    interceptors = aio_client_interceptors(  # type: ignore[no-untyped-call]
        tracer_provider=tracer_provider, filter_=_call_is_traced
    )
    return cast("list[ClientInterceptor]", interceptors)


_asyncpg_lock = threading.Lock()


class AlreadyInstrumented(RuntimeError):
    """asyncpg is already traced (for another provider)."""


def instrument_asyncpg(tracer_provider: trace.TracerProvider) -> Callable[[], None]:
    """Trace every asyncpg query with ``tracer_provider``; returns the function that stops it.

    asyncpg is patched process-wide (its classes), so one provider at a time: a
    second call before the first is undone is refused.
    """
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]  # a singleton: it tracks whether it is applied
    with _asyncpg_lock:
        if instrumentor.is_instrumented_by_opentelemetry:
            raise AlreadyInstrumented("asyncpg is already instrumented; undo that first")
        instrumentor.instrument(tracer_provider=tracer_provider)
        wrapt.wrap_function_wrapper(asyncpg.connection.Connection, "reset", _untraced_reset)

    def undo() -> None:
        with _asyncpg_lock:
            if instrumentor.is_instrumented_by_opentelemetry:
                unwrap(asyncpg.connection.Connection, "reset")
                instrumentor.uninstrument()

    return undo


async def _untraced_reset(
    wrapped: Callable[..., Awaitable[None]], instance: object, args: Any, kwargs: Any
) -> None:
    # The pool resets every connection it takes back (one more statement after each
    # acquire): housekeeping, not a query of the caller, so no span.
    with suppress_instrumentation():
        await wrapped(*args, **kwargs)


Behavior: TypeAlias = Callable[[Any, "Context"], Awaitable[Any]]


class AccessLogInterceptor(_ServerInterceptorBase):
    """One INFO line per RPC: method, gRPC status and duration.

    It sits inside the tracing interceptor, so the line carries the RPC's trace and
    span ids, and outside the error mapping, so it sees the status that was answered.
    """

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or not is_traced(method):
            return handler
        inner: Behavior = handler.unary_unary  # type: ignore[assignment]

        async def behavior(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            code = "UNKNOWN"  # what grpc answers for an exception that escapes
            try:
                response = await inner(request, context)
                code = _code_name(context.code())
                return response
            except grpc.aio.AbortError:
                code = _code_name(context.code())
                raise
            except BaseException as error:
                code = "CANCELLED" if isinstance(error, asyncio.CancelledError) else "UNKNOWN"
                raise
            finally:
                duration_ms = (time.perf_counter() - started) * 1000
                access_logger.info(
                    "%s %s %.1fms",
                    method,
                    code,
                    duration_ms,
                    extra={
                        "rpc_method": method,
                        "grpc_code": code,
                        "duration_ms": round(duration_ms, 3),
                    },
                )

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_name(code: grpc.StatusCode | None) -> str:
    return "OK" if code is None else code.name
