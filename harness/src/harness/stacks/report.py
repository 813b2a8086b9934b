"""What a failed test's report carries from its stack: faults, log tails, mock calls, traces."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from harness.stacks.stack import Stack
from harness.traces import TraceReceiver

__all__ = [
    "RECEIVER_KEY",
    "STACK_KEY",
    "fault_report",
    "stack_diagnostics",
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


def stack_diagnostics(item: pytest.Item) -> Mapping[str, str]:
    """What a failed test's report carries: the log tails of its stack's services and
    the traces its calls left, as trees."""
    sections: dict[str, str] = {}
    booted = item.stash.get(STACK_KEY, None)
    if booted is not None and (booted.faults or booted.journal.entries):
        sections["faults of this test"] = fault_report(booted)
    if booted is not None:
        for name, handle in booted.handles.items():
            sections[f"service {name} (last 40 log lines)"] = handle.log_tail(40)
        for name, endpoint in booted.mocks.items():
            calls = endpoint.mock.all_calls()
            sections[f"mock {name} ({len(calls)} calls)"] = "\n".join(
                f"{call.rpc}({str(call.request).strip()!r})" for call in calls
            )
    receiver = item.stash.get(RECEIVER_KEY, None)
    if receiver is not None:
        try:
            # the services send spans in batches: wait until they are all in (bounded)
            spans = receiver.trace_sync(None, settle=0.3, timeout=2.0)
        except AssertionError:  # nothing arrived at all
            spans = receiver.snapshot()
        if spans.spans:
            sections["traces of this test"] = spans.render()
    return sections
