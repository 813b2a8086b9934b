"""What a failed test's report carries from its stack: faults, log tails, mock calls, traces."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from harness.stacks.checked_calls import settled_spans_sync
from harness.stacks.stack import Stack
from harness.traces import LogRecords, Trace, TraceReceiver, render_trace_html

__all__ = [
    "RECEIVER_KEY",
    "STACK_KEY",
    "fault_report",
    "stack_diagnostics",
    "trace_page_path",
    "write_trace_page",
]


STACK_KEY = pytest.StashKey[Stack]()

RECEIVER_KEY = pytest.StashKey[TraceReceiver]()


def fault_report(booted: Stack) -> str:
    """The faults in force when the test failed, then every fault it injected, in order."""
    active = [f"  {target}: {', '.join(faults)}" for target, faults in booted.faults.items()] or [
        "  none"
    ]
    history = booted.journal.render() or "none"
    indented = "\n".join(f"  {line}" for line in history.splitlines())
    return "\n".join(["in force at the failure:", *active, "injected:", indented])


def stack_diagnostics(item: pytest.Item, trace_html: Path | None = None) -> Mapping[str, str]:
    """What a failed test's report carries: the log tails of its stack's services and
    the traces its calls left, as trees; with ``trace_html`` (a directory) the traces'
    HTML page is written there too and its path reported."""
    sections: dict[str, str] = {}
    booted = item.stash.get(STACK_KEY, None)
    if booted is not None and (booted.faults or booted.journal.entries):
        sections["faults of this test"] = fault_report(booted)
    if booted is not None:
        for name, handle in booted.instances().items():
            sections[f"service {name} (last 40 log lines)"] = handle.log_tail(40)
        for name, endpoint in booted.mocks.items():
            calls = endpoint.mock.all_calls()
            sections[f"mock {name} ({len(calls)} calls)"] = "\n".join(
                f"{call.rpc}({str(call.request).strip()!r})" for call in calls
            )
    receiver = item.stash.get(RECEIVER_KEY, None)
    if receiver is not None:
        spans = _spans_of_the_test(receiver, booted)
        if spans.spans:
            sections["traces of this test"] = spans.render()
            if trace_html is not None:
                page = write_trace_page(item, spans, booted, trace_html)
                sections["trace page of this test"] = str(page)
    return sections


def _spans_of_the_test(receiver: TraceReceiver, booted: Stack | None) -> Trace:
    """The spans the services sent for the failed test, once they are all in."""
    if booted is not None:
        # a stack's services export every SCHEDULE_DELAY_MS: the wait that the check of
        # their calls makes (tens of ms), not seconds for a test that made no call
        return settled_spans_sync(receiver, time.monotonic())
    try:
        # services of the test's own, exporting on their schedule: until none came for a while
        return receiver.trace_sync(None, settle=0.3, timeout=2.0)
    except AssertionError:  # nothing arrived at all
        return receiver.snapshot()


# Enough for the lines a failed request logged, which are the ones with its trace id.
_PAGE_LOG_LINES = 400


def write_trace_page(
    item: pytest.Item, spans: Trace, booted: Stack | None, directory: Path
) -> Path:
    """Write the HTML page of the test's spans, with its services' log lines that carry
    their trace ids, to :func:`trace_page_path`."""
    lines: list[str] = []
    if booted is not None:
        for handle in booted.instances().values():
            lines.extend(handle.log_tail(_PAGE_LOG_LINES).splitlines())
    page = trace_page_path(directory, item.nodeid)
    page.parent.mkdir(parents=True, exist_ok=True)
    html = render_trace_html(spans.spans, title=item.nodeid, logs=LogRecords.parse(lines))
    page.write_text(html, encoding="utf-8")
    return page


def trace_page_path(directory: Path, nodeid: str) -> Path:
    """``directory/<the test id, as a file name>.html``: anything but letters, digits and
    ``.-_`` becomes ``_``; a long id is cut and keeps a digest so that ids stay apart."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._") or "test"
    if len(name) > 150:
        digest = hashlib.sha256(nodeid.encode()).hexdigest()[:12]
        name = f"{name[:137]}-{digest}"
    return directory / f"{name}.html"
