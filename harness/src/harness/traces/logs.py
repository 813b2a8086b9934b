"""The services' JSON log lines, and the check that they carry the trace of a request."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from harness.errors import TraceAssertionError
from harness.traces.trace import Trace

__all__ = [
    "LogRecord",
    "LogRecords",
    "assert_logs_carry_trace",
]


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
        __tracebackhide__ = True
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
    __tracebackhide__ = True
    records = lines if isinstance(lines, LogRecords) else LogRecords.parse(lines)
    records.assert_carry_trace(trace, services=services)
