"""Structured (JSON) logs on stderr, one object per line, tagged with the service name.

Every line has ``time`` (ISO 8601, UTC, microseconds), ``level``, ``name`` (the
logger), ``service`` and ``message``, plus the ``extra`` fields of the call. A line
logged while a span is current (while handling an RPC, say) also has ``trace_id``
(32 hex digits) and ``span_id`` (16 hex digits) of that span, so a log line leads to
its trace and a trace to its lines; outside a span both are absent.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter


class _ServiceNameFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        return True


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` of the current span, when there is one.

    A handler filter, so it runs in the thread and context of the logging call:
    the span current there is the one the line belongs to.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True


class _UtcJsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # Unambiguous and precise enough to place a line inside a span's time window.
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def json_formatter() -> logging.Formatter:
    """The formatter of every service's log lines (see the module docstring for the fields)."""
    return _UtcJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(service)s %(message)s",
        rename_fields={"levelname": "level", "asctime": "time"},
    )


def json_handler(service: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing ``service``'s JSON lines to ``stream`` (default stderr)."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(_ServiceNameFilter(service))
    handler.addFilter(TraceContextFilter())
    return handler


def configure_logging(service: str, level: str) -> None:
    root = logging.getLogger()
    root.handlers[:] = [json_handler(service)]
    root.setLevel(level)
