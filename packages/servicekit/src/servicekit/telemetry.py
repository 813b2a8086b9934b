"""OpenTelemetry tracing of a service: its provider, gRPC and asyncpg instrumentation.

Set up at start-up by the runner (the composition root); nothing happens at import.

- :func:`start_telemetry` builds a ``TracerProvider`` whose resource says
  ``service.name=<service>``. When the environment names an OTLP endpoint, finished
  spans are batched and exported over OTLP/gRPC; otherwise nothing is exported, but
  spans (and so trace ids in the log lines) still exist, unrecorded (see below).
  :meth:`Telemetry.install` makes it the process's provider and traces asyncpg;
  :meth:`Telemetry.shutdown` flushes what is left, within a bounded time.
- The spans of the calls themselves are made where the calls are: a SERVER span per
  RPC answered (:mod:`servicekit.calls`) and a CLIENT span per call made through a
  :func:`~servicekit.channels.service_channel` (:mod:`servicekit.channels`).
- :func:`instrument_asyncpg`: a CLIENT span per query (named after the SQL verb, with
  ``db.system``, ``db.name``, ``db.statement``; parameters are not recorded), a child
  of whatever span is current, the RPC's when a handler queries.

Where no exporter is configured, spans are not recorded (sampler ``always_off``): they
still carry trace and span ids, so log lines and ``X-Trace-Id`` keep them, and the
context still propagates, but nothing is built for an export that will not happen.

Environment (the standard OpenTelemetry variables; the SDK and exporter read the rest):

- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``: the OTLP/gRPC
  receiver, e.g. ``http://127.0.0.1:4317`` (``http`` means no TLS). Unset: no export.
- ``OTEL_BSP_SCHEDULE_DELAY``: milliseconds a finished span waits before its batch is
  sent; default here 100 (the SDK's 5000 would keep a test waiting for its trace).
- ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``, ``..._INSECURE``, ``..._CERTIFICATE``,
  ``OTEL_TRACES_SAMPLER`` (default: parent-based, always on), ``OTEL_SDK_DISABLED``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

logger = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SCHEDULE_DELAY_VARIABLE = "OTEL_BSP_SCHEDULE_DELAY"
DEFAULT_SCHEDULE_DELAY_MILLIS = 100


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
    endpoint = None
    if exporter is None:
        endpoint = otlp_endpoint(environ)
        if endpoint is not None:
            exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}),
        shutdown_on_exit=False,  # the owner shuts it down, with a bound (see shutdown)
        # Nowhere to export: ids without recording (see the module docstring). None:
        # the SDK's choice from OTEL_TRACES_SAMPLER (default parent-based, always on).
        sampler=ALWAYS_OFF if exporter is None else None,
    )
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

    def undo() -> None:
        with _asyncpg_lock:
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()

    return undo
