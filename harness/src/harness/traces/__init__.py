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

The modules: ``spans`` (:class:`Span`, read from OTLP), ``trace`` (:class:`Trace` and its
assertions), ``receiver`` (:class:`TraceReceiver`, :class:`ClientSpan`), ``logs``
(:class:`LogRecords`, the log-line assertions), ``html``
(:func:`render_trace_html`, the traces as a self-contained HTML waterfall page, and
:func:`render_trace_list_html`, an index of traces), ``live`` (:class:`TraceView`, those
pages served live from a receiver, as ``make dev`` does; :class:`LogFiles`), ``forward``
(:class:`OtlpForwarder`, received spans passed on to another OTLP endpoint).
"""

from __future__ import annotations

from harness.traces.forward import OtlpForwarder
from harness.traces.html import render_trace_html, render_trace_list_html
from harness.traces.live import LogFiles, TraceView
from harness.traces.logs import LogRecord, LogRecords, assert_logs_carry_trace
from harness.traces.receiver import ClientSpan, TraceReceiver, traceparent
from harness.traces.spans import Span, SpanKind, SpanStatus, spans_from_request
from harness.traces.trace import Trace

__all__ = [
    "ClientSpan",
    "LogFiles",
    "LogRecord",
    "LogRecords",
    "OtlpForwarder",
    "Span",
    "SpanKind",
    "SpanStatus",
    "Trace",
    "TraceReceiver",
    "TraceView",
    "assert_logs_carry_trace",
    "render_trace_html",
    "render_trace_list_html",
    "spans_from_request",
    "traceparent",
]
