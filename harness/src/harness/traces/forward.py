"""Passing received spans on: an OTLP/gRPC client that re-sends each export request.

A :class:`~harness.traces.receiver.TraceReceiver` that keeps spans for a local view can
also hand every request to an :class:`OtlpForwarder`, so a collector the user runs
(Jaeger, an OpenTelemetry Collector) still gets everything. Sending happens on a
thread of its own from a bounded queue: a slow or absent collector never holds up the
receiver; what cannot be sent is dropped and counted, with the last error kept.

The endpoint and headers are read from the standard OpenTelemetry variables, as the
services' own exporter reads them (:meth:`OtlpForwarder.from_environment`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Mapping
from typing import Self
from urllib.parse import unquote, urlsplit

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

__all__ = [
    "ENDPOINT_VARIABLES",
    "OtlpForwarder",
    "otlp_endpoint",
]

# the traces-only variable wins over the general one, as in the OpenTelemetry SDK
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
HEADER_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
INSECURE_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE")
_STOP = object()


def otlp_endpoint(environ: Mapping[str, str]) -> str | None:
    """The OTLP endpoint the environment names for traces, or None."""
    for variable in ENDPOINT_VARIABLES:
        if environ.get(variable, "").strip():
            return environ[variable].strip()
    return None


def _first(environ: Mapping[str, str], variables: tuple[str, ...]) -> str:
    return next((environ[v].strip() for v in variables if environ.get(v, "").strip()), "")


def _parse_headers(raw: str) -> tuple[tuple[str, str], ...]:
    """``key1=value1,key2=value2`` (values URL-encoded), as OTEL_EXPORTER_OTLP_HEADERS."""
    headers = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"OTEL_EXPORTER_OTLP_HEADERS: {item!r} is not key=value")
        headers.append((unquote(key.strip()).lower(), unquote(value.strip())))
    return tuple(headers)


class OtlpForwarder:
    """Re-sends OTLP trace export requests to ``endpoint`` from a thread; a context manager.

    ``endpoint``: ``http://host:port`` (plaintext), ``https://host:port`` (TLS with the
    system's roots) or ``host:port`` (TLS unless ``insecure``). At most ``max_pending``
    requests wait; past that, new ones are dropped (counted in :attr:`dropped`).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        insecure: bool = False,
        timeout: float = 10.0,
        max_pending: int = 1000,
    ) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        if parts.scheme not in ("", "http", "https") or not parts.hostname or not parts.port:
            raise ValueError(
                f"OTLP endpoint {endpoint!r} is not http://host:port, https://host:port or "
                "host:port (OTEL_EXPORTER_OTLP_ENDPOINT, OTLP over gRPC)"
            )
        self.endpoint = endpoint
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._target = f"{host}:{parts.port}"
        self._plaintext = parts.scheme == "http" or (parts.scheme == "" and insecure)
        self._headers = headers
        self._timeout = timeout
        self._pending: queue.Queue[object] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.forwarded = 0  # requests the endpoint accepted
        self.dropped = 0  # requests not sent: the queue was full, or the endpoint failed
        self.last_error: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Self | None:
        """The forwarder to the environment's OTLP endpoint, or None when it names none."""
        endpoint = otlp_endpoint(environ)
        if endpoint is None:
            return None
        insecure = _first(environ, INSECURE_VARIABLES).lower() == "true"
        return cls(
            endpoint,
            headers=_parse_headers(_first(environ, HEADER_VARIABLES)),
            insecure=insecure,
        )

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="otlp-forwarder", daemon=True)
            self._thread.start()
        return self

    def submit(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        """Queue ``request`` to be sent; never blocks (a full queue drops it)."""
        try:
            self._pending.put_nowait(request)
        except queue.Full:
            self._failed("more than the queue holds waited to be sent")

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, for at most ``timeout`` seconds, then stop."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):  # still full: the join below gives up too
            self._pending.put(_STOP, timeout=timeout)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def describe(self) -> str:
        """How forwarding went, for a line at exit."""
        text = f"{self.forwarded} export requests forwarded to {self.endpoint}"
        if self.dropped:
            text += f", {self.dropped} dropped (last error: {self.last_error})"
        return text

    def _failed(self, error: str) -> None:
        with self._lock:
            self.dropped += 1
            self.last_error = error

    def _channel(self) -> grpc.Channel:
        if self._plaintext:
            return grpc.insecure_channel(self._target)
        return grpc.secure_channel(self._target, grpc.ssl_channel_credentials())

    def _run(self) -> None:
        with self._channel() as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
            while True:
                request = self._pending.get()
                if request is _STOP:
                    return
                try:
                    stub.Export(request, timeout=self._timeout, metadata=self._headers)
                except grpc.RpcError as error:
                    code = error.code() if isinstance(error, grpc.Call) else None
                    details = error.details() if isinstance(error, grpc.Call) else str(error)
                    self._failed(f"{code}: {details}")
                else:
                    with self._lock:
                        self.forwarded += 1
