"""Traces as a picture: one self-contained HTML page, a waterfall of every span.

No server and no network: the page carries its own CSS and no script, so it opens from
a CI artifact or a mail as it is. Each trace is drawn as rows in tree order (a child
under its parent, indented by its depth), each row a bar placed and sized to scale on
the trace's own time axis, coloured by service; a failed span (status ERROR) is marked.
Hovering a row shows the span's attributes (its ``title``); clicking its name opens
them as a table, with the service log lines that carry the span's id (their number is
on the row).

:func:`render_trace_list_html` is the index a live view serves beside those pages (one
row per trace, newest first, each linking to its waterfall), in the same style.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from html import escape

from harness.traces.logs import LogRecord
from harness.traces.spans import AttributeValue, Span

__all__ = [
    "SERVICE_COLOURS",
    "render_trace_html",
    "render_trace_list_html",
]

# Distinct on white and for most colour-blind readers (Okabe-Ito, then Tableau 10);
# past the last one the cycle repeats, with the service name on every row to tell apart.
SERVICE_COLOURS = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#f0e442",
    "#8c564b",
    "#7f7f7f",
    "#17becf",
)

_CSS = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 2em; font-family: monospace; }
.legend span { display: inline-block; margin-right: 1.2em; }
.swatch { display: inline-block; width: .9em; height: .9em; vertical-align: middle;
  margin-right: .3em; border-radius: 2px; }
.axis, .span { display: grid; grid-template-columns: 38% 62%; }
.axis { color: #666; border-bottom: 1px solid #ccc; }
.axis .ticks { display: flex; justify-content: space-between; }
.span { border-bottom: 1px solid #f0f0f0; }
.span:hover { background: #f4f8ff; }
.label { overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.label summary { cursor: pointer; }
.service { color: #555; font-size: .9em; }
.lane { position: relative; min-height: 1.4em; }
.bar { position: absolute; top: .25em; height: .9em; border-radius: 2px; min-width: 1px; }
.duration { position: absolute; top: 0; font-size: .85em; color: #444; padding-left: .3em;
  white-space: nowrap; }
.failed .label { color: #b00020; font-weight: 600; }
.failed .bar { outline: 2px solid #b00020; background-image: repeating-linear-gradient(
  45deg, transparent 0 4px, rgba(255,255,255,.55) 4px 8px); }
.status { color: #b00020; font-size: .85em; margin-left: .4em; }
.log-count { color: #555; font-size: .85em; margin-left: .4em; background: #eef;
  border-radius: 3px; padding: 0 .3em; }
.orphan { color: #8a6d00; font-size: .85em; margin-left: .4em; }
table.attributes { border-collapse: collapse; margin: .3em 0 .6em; font-size: .9em;
  white-space: normal; }
table.attributes td { border: 1px solid #ddd; padding: 1px 6px; font-family: monospace;
  vertical-align: top; }
.log { font-family: monospace; font-size: .85em; color: #333; white-space: pre-wrap; }
.log-level-ERROR, .log-level-CRITICAL { color: #b00020; }
.log-level-WARNING { color: #8a6d00; }
table.traces { border-collapse: collapse; }
table.traces th, table.traces td { text-align: left; padding: 2px 10px 2px 0;
  border-bottom: 1px solid #f0f0f0; white-space: nowrap; }
table.traces td.number { text-align: right; }
table.traces tr.failed td { color: #b00020; }
table.traces .trace-id { font-family: monospace; color: #555; }
"""


def render_trace_html(
    spans: Iterable[Span],
    *,
    title: str = "traces",
    logs: Iterable[LogRecord] = (),
    back_link: tuple[str, str] | None = None,
) -> str:
    """The page of ``spans`` (any number of traces), with ``logs`` beside their spans.

    A log record is shown under the span whose id it carries, or at the end of its
    trace when it carries only the trace id; records of other traces are left out.
    ``back_link``: (href, text) of a link above the title, e.g. to a list of traces.
    """
    all_spans = sorted(spans, key=lambda span: (span.start_ns, span.name, span.span_id))
    services = sorted({span.service for span in all_spans})
    colours = {
        service: SERVICE_COLOURS[index % len(SERVICE_COLOURS)]
        for index, service in enumerate(services)
    }
    by_trace: dict[str, list[Span]] = {}
    for span in all_spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    records = [record for record in logs if record.trace_id in by_trace]

    body = [f"<h1>{escape(title)}</h1>"]
    if back_link is not None:
        href, text = back_link
        body.insert(0, f'<p class="nav"><a href="{escape(href)}">{escape(text)}</a></p>')
    if not all_spans:
        body.append("<p>No spans.</p>")
    else:
        body.append(_legend(colours))
    for trace_id, trace_spans in by_trace.items():
        trace_records = [record for record in records if record.trace_id == trace_id]
        body.append(_trace_section(trace_id, trace_spans, colours, trace_records))
    return _page(title, body)


def render_trace_list_html(
    traces: Iterable[Sequence[Span]],
    *,
    href: Callable[[str], str],
    title: str = "recent traces",
    note: str = "",
) -> str:
    """One row per trace (each the spans of one trace id), the newest (latest first span)
    first: when it began, its first root span and that span's answer (HTTP status or gRPC
    code), services, spans, duration, failed spans; the root's name links to
    ``href(trace_id)``. ``note``: a line of text under the title."""
    rows = []
    ordered = sorted(
        (spans for spans in traces if spans),
        key=lambda spans: min(span.start_ns for span in spans),
        reverse=True,
    )
    for spans in ordered:
        trace_id = spans[0].trace_id
        start = min(span.start_ns for span in spans)
        end = max(max(span.end_ns, span.start_ns) for span in spans)
        ids = {span.span_id for span in spans}
        roots = [span for span in spans if span.parent_span_id not in ids]
        first = min(roots or spans, key=lambda span: span.start_ns)
        failed = sum(span.status == "ERROR" for span in spans)
        answer = first.attributes.get("http.response.status_code") or first.grpc_code or ""
        services = ", ".join(sorted({span.service or "?" for span in spans}))
        when = datetime.fromtimestamp(start / 1e9).strftime("%H:%M:%S.%f")[:-3]
        row_class = "trace-row failed" if failed else "trace-row"
        rows.append(
            f'<tr class="{row_class}" data-trace-id="{escape(trace_id)}">'
            f"<td>{when}</td>"
            f'<td><a href="{escape(href(trace_id))}">{escape(first.name)}</a></td>'
            f'<td class="answer">{escape(str(answer))}</td>'
            f"<td>{escape(services)}</td>"
            f'<td class="number">{len(spans)}</td>'
            f'<td class="number">{(end - start) / 1e6:.1f} ms</td>'
            f'<td class="number">{failed or ""}</td>'
            f'<td class="trace-id">{escape(trace_id)}</td></tr>'
        )
    body = [f"<h1>{escape(title)}</h1>"]
    if note:
        body.append(f'<p class="note">{escape(note)}</p>')
    if not rows:
        body.append("<p>No traces yet.</p>")
    else:
        body.append(
            '<table class="traces"><tr><th>began</th><th>first span</th><th>answer</th>'
            "<th>services</th><th>spans</th><th>duration</th><th>failed</th><th>trace id</th>"
            "</tr>" + "\n".join(rows) + "</table>"
        )
    return _page(title, body)


def _page(title: str, body: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _legend(colours: Mapping[str, str]) -> str:
    items = "".join(
        f'<span><i class="swatch" style="background:{colour}"></i>{escape(service or "?")}</span>'
        for service, colour in colours.items()
    )
    return f'<p class="legend">Services: {items}</p>'


def _trace_section(
    trace_id: str,
    spans: Sequence[Span],
    colours: Mapping[str, str],
    records: Sequence[LogRecord],
) -> str:
    start = min(span.start_ns for span in spans)
    end = max(max(span.end_ns, span.start_ns) for span in spans)
    total = max(end - start, 1)  # a trace of instant spans still gets an axis
    span_ids = {span.span_id for span in spans}
    logs_by_span: dict[str, list[LogRecord]] = {}
    loose_logs: list[LogRecord] = []
    for record in records:
        if record.span_id in span_ids:
            logs_by_span.setdefault(record.span_id, []).append(record)
        else:
            loose_logs.append(record)

    parts = [
        f'<section class="trace" data-trace-id="{escape(trace_id)}">',
        f"<h2>trace {escape(trace_id)}: {len(spans)} spans, {total / 1e6:.1f} ms</h2>",
        '<div class="axis"><span>span</span><span class="ticks">'
        + "".join(f"<span>{total * step / 4 / 1e6:.1f} ms</span>" for step in range(5))
        + "</span></div>",
    ]
    for span, depth in _tree_order(spans):
        parts.append(
            _span_row(span, depth, start, total, colours, logs_by_span.get(span.span_id, []))
        )
    if loose_logs:
        parts.append("<h3>Log lines of this trace without a span of it</h3>")
        parts.extend(_log_line(record, start) for record in loose_logs)
    parts.append("</section>")
    return "\n".join(parts)


def _tree_order(spans: Sequence[Span]) -> list[tuple[Span, int]]:
    """Depth-first: each span followed by its children by start time, with its depth.

    Spans whose parent is not among ``spans`` are roots; a cycle of parent links (only
    bad data makes one) is broken by drawing each span once, at the end."""
    ids = {span.span_id for span in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for span in spans:  # already by start time
        if span.parent_span_id is not None and span.parent_span_id in ids:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    ordered: list[tuple[Span, int]] = []
    drawn: set[str] = set()

    def visit(span: Span, depth: int) -> None:
        if span.span_id in drawn:
            return
        drawn.add(span.span_id)
        ordered.append((span, depth))
        for child in children.get(span.span_id, []):
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    for span in spans:
        visit(span, 0)
    return ordered


def _span_row(
    span: Span,
    depth: int,
    trace_start: int,
    total: int,
    colours: Mapping[str, str],
    records: Sequence[LogRecord],
) -> str:
    failed = span.status == "ERROR"
    left = (span.start_ns - trace_start) / total * 100
    width = max(span.end_ns - span.start_ns, 0) / total * 100
    hover = "\n".join(
        [span.describe(), *(f"{key} = {_value_text(value)}" for key, value in _sorted(span))]
    )
    message = f": {escape(span.status_message)}" if span.status_message else ""
    status = f'<span class="status">ERROR{message}</span>' if failed else ""
    orphan = (
        f'<span class="orphan">(parent {escape(span.parent_span_id)} not in trace)</span>'
        if span.parent_span_id is not None and depth == 0
        else ""
    )
    details = "".join(
        f"<tr><td>{escape(key)}</td><td>{escape(_value_text(value))}</td></tr>"
        for key, value in _sorted(span)
    )
    logs = "".join(_log_line(record, trace_start) for record in records)
    log_count = (
        f'<span class="log-count">{len(records)} log line{"s" if len(records) != 1 else ""}</span>'
        if records
        else ""
    )
    # the duration after the bar, or before it when the bar ends near the right edge
    if left + width <= 85:
        label_at = f"left:{left + width:.3f}%"
    else:
        label_at = f"right:{100 - left:.3f}%;padding-right:.3em"
    return (
        f'<div class="span{" failed" if failed else ""}" data-span-id="{escape(span.span_id)}" '
        f'data-service="{escape(span.service)}" data-depth="{depth}" '
        f'data-status="{span.status}" title="{escape(hover)}">'
        # a failed span comes open: its attributes and log lines are why one looks
        f'<details class="label"{" open" if failed else ""} '
        f'style="padding-left:{depth * 1.2:.1f}em"><summary>'
        f'{escape(span.name)} <span class="service">[{escape(span.service or "?")}] '
        f"{span.kind}</span>{status}{orphan}{log_count}</summary>"
        f'<table class="attributes">{details}</table>{logs}</details>'
        f'<div class="lane"><div class="bar" style="left:{left:.3f}%;width:{width:.3f}%;'
        f'background:{colours[span.service]}"></div>'
        f'<span class="duration" style="{label_at}">{span.duration_ms:.2f} ms</span>'
        "</div></div>"
    )


def _log_line(record: LogRecord, trace_start: int) -> str:
    when = "" if record.time_ns is None else f"+{(record.time_ns - trace_start) / 1e6:.1f} ms "
    level = record.level or ""
    service = escape(record.service or "?")
    return (
        f'<div class="log log-level-{escape(level)}">{escape(when)}[{service}] '
        f"{escape(level)} {escape(record.message)}</div>"
    )


def _sorted(span: Span) -> list[tuple[str, AttributeValue]]:
    return sorted(span.attributes.items())


def _value_text(value: AttributeValue) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return "[" + ", ".join(_value_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_value_text(item)}" for key, item in value.items()) + "}"
    return str(value)
