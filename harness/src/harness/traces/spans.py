"""Spans as the receiver keeps them: small frozen :class:`Span` values read from OTLP."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "DB_SYSTEM_ATTRIBUTES",
    "GRPC_CODE_NAMES",
    "GRPC_STATUS_ATTRIBUTE",
    "AttributeValue",
    "Span",
    "SpanKind",
    "SpanStatus",
    "spans_from_request",
]


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
GRPC_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


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
    # the resource's service.instance.id: which replica sent it ("" when none was set)
    instance: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def grpc_code(self) -> str | None:
        """The gRPC status name (``OK``, ``NOT_FOUND``...) of an RPC span, else None."""
        value = self.attributes.get(GRPC_STATUS_ATTRIBUTE)
        if isinstance(value, int) and not isinstance(value, bool):
            return GRPC_CODE_NAMES.get(value, str(value))
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
        """One line: service (and instance, when it is a replica of another name), name,
        kind, duration, status."""
        who = self.service or "?"
        if self.instance and self.instance != self.service:
            who = f"{who} {self.instance}"
        parts = [f"[{who}] {self.name} ({self.kind})", f"{self.duration_ms:.1f} ms"]
        if self.grpc_code is not None:
            parts.append(f"grpc={self.grpc_code}")
        if self.status != "UNSET":
            parts.append(self.status + (f": {self.status_message}" if self.status_message else ""))
        return "  ".join(parts)


def _same_name(actual: str, wanted: str) -> bool:
    # gRPC instrumentations name RPC spans "/pkg.Service/Method" or "pkg.Service/Method".
    return actual.lstrip("/") == wanted.lstrip("/")


def spans_from_request(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    """The spans of one OTLP export request, with their resource's ``service.name`` and
    ``service.instance.id``."""
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service_name = service if isinstance(service, str) else ""
        instance = resource.get("service.instance.id")
        instance_id = instance if isinstance(instance, str) else ""
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
                        instance=instance_id,
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
