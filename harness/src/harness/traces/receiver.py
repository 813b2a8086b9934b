"""The OTLP/gRPC trace receiver, and the test's own client span around a call."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from harness.errors import TraceAssertionError

if TYPE_CHECKING:
    from types import TracebackType


from harness.traces.spans import Span, SpanStatus, spans_from_request
from harness.traces.trace import Trace

__all__ = [
    "DEFAULT_SETTLE_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
    "ClientSpan",
    "TraceReceiver",
    "traceparent",
]


DEFAULT_SETTLE_SECONDS = 0.3
DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ClientSpan:
    """The test's own span around a call: send :attr:`metadata` (gRPC) or :attr:`headers`."""

    trace_id: str
    span_id: str

    @property
    def traceparent(self) -> str:
        return traceparent(self.trace_id, self.span_id)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC call metadata: ``stub.Method(request, metadata=call.metadata)``."""
        return (("traceparent", self.traceparent),)

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers: ``client.get(url, headers=call.headers)``."""
        return {"traceparent": self.traceparent}


def traceparent(trace_id: str, span_id: str) -> str:
    """A W3C ``traceparent`` value (sampled) for these ids."""
    return f"00-{trace_id}-{span_id}-01"


def _new_id(size: int) -> str:
    while True:
        value = secrets.token_hex(size)
        if int(value, 16):  # all-zero ids are invalid in W3C trace context
            return value


class TraceReceiver:
    """An OTLP/gRPC trace receiver on background threads; a context manager.

    ``bind_host`` is the interface it binds (loopback by default; containers need one they
    can reach, e.g. ``0.0.0.0`` with ``advertised_host`` the address they use for this
    machine). Thread-safe: spans arrive on the server's threads, tests read on theirs.

    ``max_traces``: keep only the spans of the last that many traces to arrive (the
    oldest trace is forgotten whole when a new one comes); None keeps everything, as a
    test does. ``on_export``: called with each OTLP request once its spans are stored,
    on the server's thread (e.g. :class:`~harness.traces.forward.OtlpForwarder.submit`
    to pass them on); it should not block.
    """

    def __init__(
        self,
        bind_host: str = "127.0.0.1",
        port: int = 0,
        *,
        advertised_host: str | None = None,
        max_workers: int = 4,
        max_traces: int | None = None,
        on_export: Callable[[trace_service_pb2.ExportTraceServiceRequest], None] | None = None,
    ) -> None:
        if max_traces is not None and max_traces < 1:
            raise ValueError(f"max_traces must be at least 1 (or None), not {max_traces}")
        self.bind_host = bind_host
        self._requested_port = port
        self.advertised_host = advertised_host
        self._max_workers = max_workers
        self.max_traces = max_traces
        self.on_export = on_export
        self.forgotten_traces = 0  # traces dropped to stay within max_traces
        self._server: grpc.Server | None = None
        self._port: int | None = None
        self._condition = threading.Condition()
        self._spans: dict[str, list[Span]] = {}
        self._last_arrival: dict[str, float] = {}  # trace id -> monotonic time
        self._last_arrival_any: float | None = None
        # Spans that began before the last clear() are dropped when they arrive: a
        # service's start-up (its migrations) or the previous test, exported in batches,
        # can arrive after the clear. Wall clock, as the spans' own times are.
        self._since_ns = 0
        self.dropped_from_before_clear = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    # ---------------------------------------------------------------- life

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = grpc.server(
            futures.ThreadPoolExecutor(self._max_workers, thread_name_prefix="otlp-receiver"),
            options=[("grpc.so_reuseport", 0)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(self), server
        )
        address = f"{_bracketed(self.bind_host)}:{self._requested_port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as error:
            raise OSError(f"the OTLP receiver could not bind {address}: {error}") from error
        server.start()
        self._server, self._port = server, port
        return self

    def close(self, grace: float | None = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the receiver is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """What to put in a service's ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        host = self.advertised_host or self.bind_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 -- a wildcard is reached on loopback
            host = "127.0.0.1"
        return f"http://{_bracketed(host)}:{self.port}"

    # ---------------------------------------------------------------- storing

    def add(self, spans: Iterable[Span]) -> None:
        """Store spans (what the OTLP service does; also how client spans get in)."""
        now = time.monotonic()
        with self._condition:
            added = False
            for span in spans:
                if span.start_ns < self._since_ns:
                    self.dropped_from_before_clear += 1
                    continue
                if span.trace_id not in self._spans:
                    self._make_room()
                self._spans.setdefault(span.trace_id, []).append(span)
                self._last_arrival[span.trace_id] = now
                added = True
            if not added:
                return
            self._last_arrival_any = now
            self._condition.notify_all()
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(event.set)

    def _make_room(self) -> None:
        """Forget the traces that arrived first until a new one fits (lock held)."""
        if self.max_traces is None:
            return
        while len(self._spans) >= self.max_traces:
            oldest = next(iter(self._spans))  # dicts keep the order traces first arrived
            del self._spans[oldest]
            self._last_arrival.pop(oldest, None)
            self.forgotten_traces += 1

    def clear(self) -> None:
        """Forget every span received so far (e.g. at the start of each test), and every
        span that began before now and arrives later (a service's start-up, the test
        before): what is received from here on is only what began after."""
        with self._condition:
            self._since_ns = time.time_ns()
            self._spans.clear()
            self._last_arrival.clear()
            self._last_arrival_any = None

    @property
    def last_arrival(self) -> float | None:
        """When the latest span arrived (``time.monotonic()``), None if none since :meth:`clear`."""
        with self._condition:
            return self._last_arrival_any

    def trace_ids(self) -> list[str]:
        with self._condition:
            return list(self._spans)

    def traces(self) -> list[Trace]:
        """Every trace kept, one :class:`Trace` each, in the order they first arrived."""
        with self._condition:
            return [Trace(spans) for spans in self._spans.values()]

    def snapshot(self, trace_id: str | None = None) -> Trace:
        """What has arrived so far, without waiting (every trace when ``trace_id`` is None)."""
        with self._condition:
            return self._trace(trace_id)

    def _trace(self, trace_id: str | None) -> Trace:
        if trace_id is None:
            return Trace(span for spans in self._spans.values() for span in spans)
        return Trace(self._spans.get(trace_id, ()))

    @contextlib.contextmanager
    def client_span(
        self, name: str = "client span", *, service: str = "test"
    ) -> Iterator[ClientSpan]:
        """A span for the test's own call, recorded here when the block ends.

        Send its ``metadata``/``headers`` with the call: the services' spans become its
        descendants, so the trace has one root and no missing parent.
        """
        call = ClientSpan(_new_id(16), _new_id(8))
        start = time.time_ns()
        status: SpanStatus = "UNSET"
        message = ""
        try:
            yield call
        except BaseException as error:
            status, message = "ERROR", f"{type(error).__name__}: {error}"
            raise
        finally:
            self.add(
                [
                    Span(
                        trace_id=call.trace_id,
                        span_id=call.span_id,
                        parent_span_id=None,
                        name=name,
                        service=service,
                        kind="CLIENT",
                        start_ns=start,
                        end_ns=time.time_ns(),
                        status=status,
                        status_message=message,
                    )
                ]
            )

    # ---------------------------------------------------------------- waiting

    def _wait_needed(self, trace_id: str | None, settle: float, now: float) -> float | None:
        """None when the trace is ready, else how long to wait (inf: until a span arrives)."""
        last = self._last_arrival_any if trace_id is None else self._last_arrival.get(trace_id)
        if last is None:
            return math.inf
        remaining = last + settle - now
        return None if remaining <= 0 else remaining

    def _timed_out(self, trace_id: str | None, timeout: float) -> Trace:
        __tracebackhide__ = True
        trace = self._trace(trace_id)
        if trace.spans:  # spans kept coming for the whole timeout: give what is there
            return trace
        what = "no span" if trace_id is None else f"no span of trace {trace_id}"
        known = ", ".join(self._spans) or "none"
        raise TraceAssertionError(
            f"{what} arrived at {self.endpoint} within {timeout}s (traces received: {known}). "
            "Is the service's OTEL_EXPORTER_OTLP_ENDPOINT set to this endpoint, did the call "
            "send the trace context (traceparent), and was the trace sampled?"
        )

    def trace_sync(
        self,
        trace_id: str | None,
        *,
        settle: float = DEFAULT_SETTLE_SECONDS,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> Trace:
        """Blocking :meth:`trace`."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                now = time.monotonic()
                wait = self._wait_needed(trace_id, settle, now)
                if wait is None:
                    return self._trace(trace_id)
                if now >= deadline:
                    return self._timed_out(trace_id, timeout)
                self._condition.wait(min(wait, deadline - now))

    async def trace(
        self,
        trace_id: str | None,
        *,
        settle: float = DEFAULT_SETTLE_SECONDS,
        # Part of the contract, not a cancellation: on timeout the error says what to check.
        timeout: float = DEFAULT_TIMEOUT_SECONDS,  # noqa: ASYNC109
    ) -> Trace:
        """The spans of ``trace_id`` once they have arrived and ``settle`` s passed without more.

        ``trace_id`` None: every span received since :meth:`clear` (to check, say, that a
        request made only one trace). After ``timeout`` seconds with nothing received,
        a :class:`TraceAssertionError` says what to check.
        """
        __tracebackhide__ = True
        loop = asyncio.get_running_loop()
        waiter = (loop, asyncio.Event())
        deadline = time.monotonic() + timeout
        with self._condition:
            self._waiters.add(waiter)
        try:
            while True:
                waiter[1].clear()  # before the check, so an arrival after it is not missed
                with self._condition:
                    now = time.monotonic()
                    wait = self._wait_needed(trace_id, settle, now)
                    if wait is None:
                        return self._trace(trace_id)
                    if now >= deadline:
                        return self._timed_out(trace_id, timeout)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter[1].wait(), min(wait, deadline - now))
        finally:
            with self._condition:
                self._waiters.discard(waiter)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: TraceReceiver) -> None:
        self._receiver = receiver

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._receiver.add(spans_from_request(request))
        if self._receiver.on_export is not None:
            self._receiver.on_export(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
