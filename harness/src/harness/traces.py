"""Trace assertions: an OTLP receiver inside the harness, and checks on what it received.

:class:`TraceReceiver` is an OTLP/gRPC trace collector (``TraceService/Export``) run by
a gRPC server on threads of its own, so it keeps receiving while a test blocks. Point
the services' ``OTEL_EXPORTER_OTLP_ENDPOINT`` at :attr:`TraceReceiver.endpoint`. It keeps
every span as a small frozen :class:`Span`, indexed by trace id.

A test asks for the trace of a call it made::

    with receiver.client_span("create entity") as call:   # the test's own span
        await stub.CreateEntity(request, metadata=call.metadata)
    trace = await receiver.trace(call.trace_id)
    trace.assert_no_orphans()
    trace.assert_path("create entity", "dummy.v1.DummyService/CreateEntity",
                      "user.v1.UserService/GetUser")

:meth:`TraceReceiver.trace` returns once spans of that trace have arrived and no new one
came for ``settle`` seconds (exporters send batches on a schedule, so "all spans are
here" can only be inferred from a quiet period), within ``timeout``.

Every assertion of :class:`Trace` raises :class:`TraceAssertionError` whose message ends
with the trace drawn as a tree (:meth:`Trace.render`). :class:`LogRecords` reads the
services' JSON log lines and checks that they carry the trace id
(:meth:`LogRecords.assert_carry_trace`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Self, TypeAlias, overload

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from harness.errors import TraceAssertionError

if TYPE_CHECKING:
    from types import TracebackType

DEFAULT_SETTLE_SECONDS = 0.3
DEFAULT_TIMEOUT_SECONDS = 10.0

AttributeValue: TypeAlias = (
    "str | bool | int | float | bytes | tuple[AttributeValue, ...] | dict[str, AttributeValue] "
    "| None"
)
SpanKind = Literal["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
SpanStatus = Literal["UNSET", "OK", "ERROR"]

_KINDS: dict[int, SpanKind] = {
    trace_pb2.Span.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    trace_pb2.Span.SPAN_KIND_INTERNAL: "INTERNAL",
    trace_pb2.Span.SPAN_KIND_SERVER: "SERVER",
    trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT",
    trace_pb2.Span.SPAN_KIND_PRODUCER: "PRODUCER",
    trace_pb2.Span.SPAN_KIND_CONSUMER: "CONSUMER",
}
_STATUSES: dict[int, SpanStatus] = {
    trace_pb2.Status.STATUS_CODE_UNSET: "UNSET",
    trace_pb2.Status.STATUS_CODE_OK: "OK",
    trace_pb2.Status.STATUS_CODE_ERROR: "ERROR",
}
GRPC_STATUS_ATTRIBUTE = "rpc.grpc.status_code"
DB_SYSTEM_ATTRIBUTES = ("db.system", "db.system.name")
_GRPC_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


# ---------------------------------------------------------------------------- spans


@dataclass(frozen=True)
class Span:
    """One received span. Ids are lower-case hex; times are Unix epoch nanoseconds."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    service: str  # the resource's service.name ("" when the exporter sent none)
    kind: SpanKind
    start_ns: int
    end_ns: int
    status: SpanStatus
    status_message: str = ""
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict, hash=False, compare=True)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def grpc_code(self) -> str | None:
        """The gRPC status name (``OK``, ``NOT_FOUND``...) of an RPC span, else None."""
        value = self.attributes.get(GRPC_STATUS_ATTRIBUTE)
        if isinstance(value, int) and not isinstance(value, bool):
            return _GRPC_CODE_NAMES.get(value, str(value))
        return None

    @property
    def db_system(self) -> str | None:
        """The database of a database client span (``postgresql``...), else None.

        OpenTelemetry's ``db.system`` attribute (``db.system.name`` in newer conventions),
        which the asyncpg instrumentation sets on every query span."""
        for key in DB_SYSTEM_ATTRIBUTES:
            value = self.attributes.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    def matches(
        self, name: str | None = None, *, service: str | None = None, kind: SpanKind | None = None
    ) -> bool:
        """Whether this span has ``name`` (a leading "/" is ignored), ``service``, ``kind``."""
        return (
            (name is None or _same_name(self.name, name))
            and (service is None or self.service == service)
            and (kind is None or self.kind == kind)
        )

    def describe(self) -> str:
        """One line: service, name, kind, duration, status."""
        parts = [f"[{self.service or '?'}] {self.name} ({self.kind})", f"{self.duration_ms:.1f} ms"]
        if self.grpc_code is not None:
            parts.append(f"grpc={self.grpc_code}")
        if self.status != "UNSET":
            parts.append(self.status + (f": {self.status_message}" if self.status_message else ""))
        return "  ".join(parts)


def _same_name(actual: str, wanted: str) -> bool:
    # gRPC instrumentations name RPC spans "/pkg.Service/Method" or "pkg.Service/Method".
    return actual.lstrip("/") == wanted.lstrip("/")


def spans_from_request(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    """The spans of one OTLP export request, with their resource's ``service.name``."""
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service_name = service if isinstance(service, str) else ""
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        service=service_name,
                        kind=_KINDS.get(span.kind, "UNSPECIFIED"),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status=_STATUSES.get(span.status.code, "UNSET"),
                        status_message=span.status.message,
                        attributes=_attributes(span.attributes),
                    )
                )
    return spans


def _attributes(pairs: Iterable[common_pb2.KeyValue]) -> dict[str, AttributeValue]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: common_pb2.AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind is None:
        return None
    result: AttributeValue = getattr(value, kind)
    return result


# ---------------------------------------------------------------------------- traces


class Trace:
    """The spans of one request, normally all of one trace id, with assertions on them.

    Every assertion raises :class:`TraceAssertionError` with the trace drawn as a tree.
    """

    def __init__(self, spans: Iterable[Span]) -> None:
        self.spans: tuple[Span, ...] = tuple(sorted(spans, key=_start_order))
        self._by_id = {span.span_id: span for span in self.spans}

    def __repr__(self) -> str:
        return f"Trace({len(self.spans)} spans, trace ids {self.trace_ids})"

    def __len__(self) -> int:
        return len(self.spans)

    # ---------------------------------------------------------------- reading

    @property
    def trace_ids(self) -> list[str]:
        """The trace ids present, in order of their first span's start."""
        return list(dict.fromkeys(span.trace_id for span in self.spans))

    @property
    def trace_id(self) -> str:
        """The trace id, when there is exactly one (else a TraceAssertionError)."""
        self.assert_single_trace()
        return self.spans[0].trace_id

    @property
    def services(self) -> list[str]:
        """The services that took part, sorted."""
        return sorted({span.service for span in self.spans})

    @property
    def roots(self) -> list[Span]:
        """Spans without a parent."""
        return [span for span in self.spans if span.parent_span_id is None]

    @property
    def orphans(self) -> list[Span]:
        """Spans whose parent is not in this trace."""
        return [
            span
            for span in self.spans
            if span.parent_span_id is not None and span.parent_span_id not in self._by_id
        ]

    def parent(self, span: Span) -> Span | None:
        return None if span.parent_span_id is None else self._by_id.get(span.parent_span_id)

    def children(self, span: Span) -> list[Span]:
        """Direct children, by start time."""
        return [child for child in self.spans if child.parent_span_id == span.span_id]

    def ancestors(self, span: Span) -> Iterator[Span]:
        """Parent, grandparent... as far as the links reach inside this trace."""
        seen = {span.span_id}
        current = self.parent(span)
        while current is not None and current.span_id not in seen:
            yield current
            seen.add(current.span_id)
            current = self.parent(current)

    def spans_matching(
        self, name: str | None = None, *, service: str | None = None, kind: SpanKind | None = None
    ) -> list[Span]:
        return [span for span in self.spans if span.matches(name, service=service, kind=kind)]

    def span(
        self, name: str | None = None, *, service: str | None = None, kind: SpanKind | None = None
    ) -> Span:
        """The one span with ``name`` (and ``service``, ``kind``): for attribute checks."""
        found = self.spans_matching(name, service=service, kind=kind)
        if len(found) != 1:
            wanted = _describe_query(name, service, kind)
            problem = "no span" if not found else f"{len(found)} spans"
            hint = "" if found else f"; span names present: {self._names()}"
            self.fail(f"{problem} {wanted} (expected exactly one){hint}")
        return found[0]

    # ---------------------------------------------------------------- assertions

    def fail(self, message: str) -> NoReturn:
        raise TraceAssertionError(f"{message}\n\n{self.render()}")

    def assert_single_trace(self) -> Self:
        """All spans share one trace id (a service that dropped the context starts another)."""
        ids = self.trace_ids
        if len(ids) != 1:
            self.fail(
                f"expected the spans of one trace, got {len(ids)} trace ids"
                + (f": {', '.join(ids)}" if ids else "")
            )
        return self

    def assert_no_orphans(self, *, remote_parent: str | None = None) -> Self:
        """Every span's parent is in the trace; only roots (no parent) have none.

        ``remote_parent``: a span id known to live outside the receiver (the id of a
        ``traceparent`` a test made up), accepted as a parent.
        """
        orphans = [span for span in self.orphans if span.parent_span_id != remote_parent]
        if orphans:
            listed = "; ".join(
                f"{span.describe()} -> parent {span.parent_span_id}" for span in orphans
            )
            self.fail(f"{len(orphans)} span(s) whose parent is not in the trace: {listed}")
        return self

    def assert_services(self, expected: Iterable[str], *, exact: bool = True) -> Self:
        """These services took part (``exact``: and no other)."""
        wanted = set(expected)
        present = set(self.services)
        missing = sorted(wanted - present)
        extra = sorted(present - wanted) if exact else []
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"missing {missing}")
            if extra:
                problems.append(f"unexpected {extra}")
            self.fail(
                f"services {', '.join(problems)}; expected {sorted(wanted)}, "
                f"present {sorted(present)}"
            )
        return self

    def assert_rpc(
        self, method: str, *, service: str | None = None, code: str | None = None
    ) -> Self:
        """A SERVER span for ``method`` (``pkg.Service/Method``), served by ``service``.

        ``code``: the gRPC status name it must have answered (``"OK"``, ``"NOT_FOUND"``...).
        """
        found = self.spans_matching(method, service=service, kind="SERVER")
        if not found:
            self.fail(
                f"no SERVER span {_describe_query(method, service, None)}; "
                f"span names present: {self._names()}"
            )
        if code is not None:
            self._check_codes(found, method, _code_name(code))
        return self

    def assert_status(
        self, name: str, code: str | grpc.StatusCode | int, *, service: str | None = None
    ) -> Self:
        """The gRPC status of the RPC spans named ``name`` (client and server alike)."""
        found = [
            span
            for span in self.spans_matching(name, service=service)
            if span.grpc_code is not None
        ]
        if not found:
            self.fail(
                f"no RPC span {_describe_query(name, service, None)} with a gRPC status; "
                f"span names present: {self._names()}"
            )
        self._check_codes(found, name, _code_name(code))
        return self

    def assert_span_status(
        self, name: str, status: SpanStatus, *, service: str | None = None
    ) -> Self:
        """The OpenTelemetry status (UNSET, OK, ERROR) of every span named ``name``."""
        found = self.spans_matching(name, service=service)
        if not found:
            self.fail(f"no span {_describe_query(name, service, None)}; present: {self._names()}")
        wrong = [span for span in found if span.status != status]
        if wrong:
            self.fail(
                f"expected status {status} for {name!r}, got "
                + ", ".join(f"{span.status} ({span.service})" for span in wrong)
            )
        return self

    def assert_path(self, *names: str) -> Self:
        """Spans with these names exist, each an ancestor of the next (not just a parent).

        E.g. ``assert_path("client span", "dummy.v1.DummyService/CreateEntity",
        "user.v1.UserService/GetUser")``.
        """
        if not names:
            raise ValueError("assert_path needs at least one span name")
        if self._path_from(None, names) is None:
            self.fail(f"no chain of nested spans {' -> '.join(repr(n) for n in names)}")
        return self

    def _path_from(self, above: Span | None, names: Sequence[str]) -> list[Span] | None:
        if not names:
            return []
        for candidate in self.spans_matching(names[0]):
            if above is not None and above.span_id not in {
                ancestor.span_id for ancestor in self.ancestors(candidate)
            }:
                continue
            rest = self._path_from(candidate, names[1:])
            if rest is not None:
                return [candidate, *rest]
        return None

    def database_spans(self, service: str | None = None) -> list[Span]:
        """The database client spans (see :attr:`Span.db_system`), of ``service`` if given."""
        return [
            span
            for span in self.spans
            if span.db_system is not None and (service is None or span.service == service)
        ]

    def assert_database(
        self, service: str, *, under: str | None = None, system: str | None = None
    ) -> Self:
        """``service`` queried its database in this trace: at least one database span of
        ``service`` (of ``system``, e.g. "postgresql"), and with ``under`` (a span name,
        e.g. the RPC it served), every one of them nested somewhere below such a span."""
        found = [
            span
            for span in self.database_spans(service)
            if system is None or span.db_system == system
        ]
        if not found:
            what = f"{system} " if system else ""
            self.fail(f"no {what}database span of {service!r} (db.system set) in the trace")
        if under is not None:
            stray = [
                span for span in found if not any(a.matches(under) for a in self.ancestors(span))
            ]
            if stray:
                listed = "; ".join(span.describe() for span in stray)
                self.fail(f"database spans of {service!r} not under {under!r}: {listed}")
        return self

    def _check_codes(self, spans: Sequence[Span], name: str, expected: str) -> None:
        wrong = [span for span in spans if span.grpc_code != expected]
        if wrong:
            got = ", ".join(f"{span.grpc_code} ({span.kind} in {span.service})" for span in wrong)
            self.fail(f"expected gRPC status {expected} for {name!r}, got {got}")

    def _names(self) -> list[str]:
        return sorted({span.name for span in self.spans})

    # ---------------------------------------------------------------- rendering

    def render(self) -> str:
        """The trace as an indented tree: children under their parent, by start time.

        Spans whose parent is missing are drawn as extra roots, marked.
        """
        if not self.spans:
            return "(no spans)"
        lines: list[str] = []
        for trace_id in self.trace_ids:
            spans = [span for span in self.spans if span.trace_id == trace_id]
            services = sorted({span.service for span in spans})
            lines.append(f"trace {trace_id}: {len(spans)} spans, services {', '.join(services)}")
            tops = [span for span in spans if self.parent(span) is None]
            drawn: set[str] = set()
            for index, top in enumerate(tops):
                self._render(top, "", index == len(tops) - 1, lines, drawn)
        return "\n".join(lines)

    def _render(
        self, span: Span, indent: str, last: bool, lines: list[str], drawn: set[str]
    ) -> None:
        if span.span_id in drawn:  # a cycle of parent links: draw each span once
            return
        drawn.add(span.span_id)
        note = ""
        if span.parent_span_id is not None and span.parent_span_id not in self._by_id:
            note = f"  (parent {span.parent_span_id} not in trace)"
        lines.append(f"{indent}{'└── ' if last else '├── '}{span.describe()}{note}")
        children = self.children(span)
        for index, child in enumerate(children):
            self._render(
                child,
                indent + ("    " if last else "│   "),
                index == len(children) - 1,
                lines,
                drawn,
            )


def _start_order(span: Span) -> tuple[int, str, str]:
    return (span.start_ns, span.name, span.span_id)


def _describe_query(name: str | None, service: str | None, kind: SpanKind | None) -> str:
    parts = [f"named {name!r}" if name is not None else "of any name"]
    if service is not None:
        parts.append(f"in service {service!r}")
    if kind is not None:
        parts.append(f"of kind {kind}")
    return " ".join(parts)


def _code_name(code: str | grpc.StatusCode | int) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return _GRPC_CODE_NAMES.get(code, str(code))
    if code.upper() not in grpc.StatusCode.__members__:
        raise ValueError(f"{code!r} is not a gRPC status code name")
    return code.upper()


# ---------------------------------------------------------------------------- the receiver


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

    ``host`` is the interface it binds (loopback by default; containers need one they
    can reach, e.g. ``0.0.0.0`` with ``advertised_host`` the address they use for this
    machine). Thread-safe: spans arrive on the server's threads, tests read on theirs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        advertised_host: str | None = None,
        max_workers: int = 4,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.advertised_host = advertised_host
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._port: int | None = None
        self._condition = threading.Condition()
        self._spans: dict[str, list[Span]] = {}
        self._last_arrival: dict[str, float] = {}  # trace id -> monotonic time
        self._last_arrival_any: float | None = None
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
        address = f"{_bracketed(self.host)}:{self._requested_port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as error:
            raise OSError(f"the OTLP receiver could not bind {address}: {error}") from error
        server.start()
        self._server, self._port = server, port
        return self

    def stop(self, grace: float | None = 1.0) -> None:
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
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the receiver is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """What to put in a service's ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        host = self.advertised_host or self.host
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

    def clear(self) -> None:
        """Forget every span received so far (e.g. at the start of each test)."""
        with self._condition:
            self._spans.clear()
            self._last_arrival.clear()
            self._last_arrival_any = None

    def trace_ids(self) -> list[str]:
        with self._condition:
            return list(self._spans)

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
        return trace_service_pb2.ExportTraceServiceResponse()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# ---------------------------------------------------------------------------- logs


@dataclass(frozen=True)
class LogRecord:
    """One JSON log line of a service (the format of ``servicekit.logging``)."""

    time_ns: int | None  # None when the line has no parseable ISO 8601 ``time`` with a zone
    service: str | None
    level: str | None
    message: str
    trace_id: str | None
    span_id: str | None
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def parse(cls, line: str) -> LogRecord | None:
        """The record of a JSON line, or None for anything else (a stray print, a traceback)."""
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return cls(
            time_ns=_time_ns(data.get("time")),
            service=_text(data.get("service")),
            level=_text(data.get("level")),
            message=str(data.get("message", "")),
            trace_id=_text(data.get("trace_id")) or None,
            span_id=_text(data.get("span_id")) or None,
            fields=data,
        )

    def describe(self) -> str:
        when = "?" if self.time_ns is None else str(self.time_ns)
        return (
            f"[{self.service}] {self.level} {self.message!r} at {when} "
            f"trace_id={self.trace_id} span_id={self.span_id}"
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time_ns(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:  # a local time: not comparable with span times
        return None
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# A log time has microseconds, a span time nanoseconds: a line logged right at a span's
# start may read up to a microsecond earlier.
_LOG_TIME_SLACK_NS = 2_000


class LogRecords(Sequence[LogRecord]):
    """Parsed log lines of one or more services (lines that are not JSON are kept aside)."""

    def __init__(self, records: Iterable[LogRecord], unparsed: Iterable[str] = ()) -> None:
        self.records = tuple(records)
        self.unparsed = tuple(unparsed)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> LogRecords:
        records, unparsed = [], []
        for line in lines:
            if not line.strip():
                continue
            record = LogRecord.parse(line)
            if record is None:
                unparsed.append(line)
            else:
                records.append(record)
        return cls(records, unparsed)

    @overload
    def __getitem__(self, index: int) -> LogRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[LogRecord]: ...
    def __getitem__(self, index: int | slice) -> LogRecord | Sequence[LogRecord]:
        return self.records[index]

    def __len__(self) -> int:
        return len(self.records)

    def of_service(self, service: str) -> list[LogRecord]:
        return [record for record in self.records if record.service == service]

    def with_trace(self, trace_id: str) -> list[LogRecord]:
        return [record for record in self.records if record.trace_id == trace_id]

    def assert_carry_trace(self, trace: Trace, *, services: Iterable[str] | None = None) -> None:
        """The services' log lines of this request carry its trace id. Precisely:

        1. each service in ``services`` (default: every service with a SERVER span in the
           trace) has at least one record carrying the trace id;
        2. every record of those services that has a ``trace_id`` and was logged while
           one of the service's spans of this trace was open carries *this* trace id
           (a concurrent request to the same service would break this: trace one
           request at a time);
        3. every record carrying the trace id names (``span_id``) a span of the trace.

        A record without a ``trace_id`` inside the window is not a failure (the service
        may log from a thread without the context); rule 1 catches a service whose
        lines never carry it.
        """
        trace_id = trace.trace_id
        checked = (
            sorted({span.service for span in trace.spans if span.kind == "SERVER"})
            if services is None
            else list(services)
        )
        problems: list[str] = []
        carrying = self.with_trace(trace_id)
        for service in checked:
            if not any(record.service == service for record in carrying):
                own = self.of_service(service)
                problems.append(
                    f"no log record of {service!r} carries trace id {trace_id} "
                    f"({len(own)} records of {service!r} in total)"
                )
            windows = [(s.start_ns, s.end_ns) for s in trace.spans if s.service == service]
            for record in self.of_service(service):
                if record.trace_id in (None, trace_id) or record.time_ns is None:
                    continue
                if any(
                    start - _LOG_TIME_SLACK_NS <= record.time_ns <= end + _LOG_TIME_SLACK_NS
                    for start, end in windows
                ):
                    problems.append(
                        f"logged during the request with another trace id: {record.describe()}"
                    )
        span_ids = {span.span_id for span in trace.spans}
        for record in carrying:
            if record.span_id is not None and record.span_id not in span_ids:
                problems.append(f"names a span that is not in the trace: {record.describe()}")
        if problems:
            raise TraceAssertionError(
                "log records do not carry the trace as expected:\n  "
                + "\n  ".join(problems)
                + f"\n\n{trace.render()}"
            )


def assert_logs_carry_trace(
    lines: Iterable[str] | LogRecords, trace: Trace, *, services: Iterable[str] | None = None
) -> None:
    """:meth:`LogRecords.assert_carry_trace` on raw JSON log lines (or parsed records)."""
    records = lines if isinstance(lines, LogRecords) else LogRecords.parse(lines)
    records.assert_carry_trace(trace, services=services)
