"""The calls a stack's services make to each other, held to their contracts.

The test's own calls are checked where it awaits them
(:class:`~harness.contracts.DeclaredStatusCheck`); the calls between services (the
gateway asking auth, dummy asking user) never pass through the test process. Their
answers are in the SERVER spans the services export to the session's receiver
(``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code``: :mod:`servicekit.calls`).
After each test that used a stack, :func:`check_stack_calls` waits until the spans of
its calls are in (:func:`settled_spans`), and an error status the answering RPC does
not declare in ``(kit.v1.may_return)`` fails the test at teardown
(an error at teardown) naming the service, the RPC, the code,
the caller, the trace id and the request the trace began with.

Not counted against the provider:

- CANCELLED: servicekit records it when the handler was cancelled, which grpc does when
  the caller went away (its deadline passed, it cancelled, a fault link cut the
  connection): the caller's doing, never an answer the provider chose.
- Calls whose caller is the test process (no parent span, or the test's own client
  span): :class:`~harness.contracts.DeclaredStatusCheck` already checked them where the
  test awaited them.

DEADLINE_EXCEEDED does count: a caller's deadline shows as CANCELLED on the provider's
side (above), so a provider that answers DEADLINE_EXCEEDED chose to (dummy's
CreateEntity when user is too slow, which it declares).

A test that breaks a provider on purpose opts out with ``@pytest.mark.allow_undeclared_codes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import Collection, Iterable, Iterator

import grpc
import pytest

from harness.contracts.declared import declared_codes_of_path, describe_declared
from harness.services import ServiceSpec
from harness.traces import Span, Trace, TraceReceiver

__all__ = [
    "ALLOW_UNDECLARED_MARKER",
    "SCHEDULE_DELAY_MS",
    "check_stack_calls",
    "settled_spans",
    "settled_spans_sync",
    "undeclared_answers",
]

ALLOW_UNDECLARED_MARKER = (
    "allow_undeclared_codes: the calls between this test's stack services are not held to "
    "their contracts' (kit.v1.may_return) codes (for a test that breaks a provider on purpose)"
)

SCHEDULE_DELAY_MS = 10
"""``OTEL_BSP_SCHEDULE_DELAY`` of the services a stack boots (their own default is
100 ms): the wait for a test's last spans after it is this plus :data:`FLUSH_MARGIN`."""

FLUSH_MARGIN = 0.025  # seconds: an export's own round trip, and a busy machine's lateness
QUIET = 0.015  # seconds without a new span once the bound has passed: an export in flight
SETTLE_TIMEOUT = 2.0  # seconds: spans that keep coming (a background task) stop the wait

# How a report shows the request the trace began with (the gateway's HTTP server span).
_REQUEST_ATTRIBUTES = (
    "http.request.method",
    "http.method",
    "http.route",
    "url.path",
    "http.target",
    "http.response.status_code",
    "http.status_code",
)
_TEST_SERVICE = "test"  # the service of TraceReceiver.client_span's spans


async def settled_spans(receiver: TraceReceiver, ended: float) -> Trace:
    """Every span received once the services have exported what they finished before
    ``ended`` (a ``time.monotonic()``): each exports its batch every
    :data:`SCHEDULE_DELAY_MS`, so that is the wait, plus a margin, plus until no span
    arrived for :data:`QUIET` (bounded by :data:`SETTLE_TIMEOUT`)."""
    for pause in _settling_pauses(receiver, ended):
        await asyncio.sleep(pause)
    return receiver.snapshot()


def settled_spans_sync(receiver: TraceReceiver, ended: float) -> Trace:
    """Blocking :func:`settled_spans`."""
    for pause in _settling_pauses(receiver, ended):
        time.sleep(pause)
    return receiver.snapshot()


def _settling_pauses(receiver: TraceReceiver, ended: float) -> Iterator[float]:
    bound = ended + SCHEDULE_DELAY_MS / 1000 + FLUSH_MARGIN
    yield max(0.0, bound - time.monotonic())
    give_up = time.monotonic() + SETTLE_TIMEOUT
    while True:
        last = receiver.last_arrival
        now = time.monotonic()
        if last is None or now - last >= QUIET or now >= give_up:
            return
        yield QUIET - (now - last)


def _path(span: Span) -> str | None:
    service = span.attributes.get("rpc.service")
    method = span.attributes.get("rpc.method")
    if isinstance(service, str) and isinstance(method, str):
        return f"/{service}/{method}"
    return None


def _request(spans: Trace, span: Span) -> str:
    ancestors = list(spans.ancestors(span))
    root = ancestors[-1] if ancestors else span
    attributes = root.attributes
    shown = [f"{key}={attributes[key]!s}" for key in _REQUEST_ATTRIBUTES if key in attributes]
    where = f"[{root.service or '?'}] {root.name}"
    return f"{where} ({', '.join(shown)})" if shown else where


def _caller(spans: Trace, span: Span) -> str | None:
    """Who made the call: the parent span's service; None for the test's own call."""
    if span.parent_span_id is None:
        return None
    parent = spans.parent(span)
    if parent is None:
        return f"? (parent span {span.parent_span_id} not received)"
    if parent.service == _TEST_SERVICE:
        return None
    return parent.service or "?"


def _a_parent_missing(spans: Trace, services: Collection[str]) -> bool:
    """Whether a span of ``services`` names a parent span that has not arrived."""
    return any(
        span.parent_span_id is not None and spans.parent(span) is None
        for span in spans.spans
        if span.service in services
    )


def undeclared_answers(spans: Trace, services: Collection[str]) -> list[str]:
    """One line for each call between ``services`` whose status its RPC does not declare
    (the module doc says which calls and codes count)."""
    found = []
    for span in spans.spans:
        path = _path(span)
        code_name = span.grpc_code
        if span.kind != "SERVER" or span.service not in services or path is None:
            continue
        code = grpc.StatusCode.__members__.get(code_name) if code_name else None
        if code in (None, grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            continue
        caller = _caller(spans, span)
        if caller is None:
            continue  # the test's own call: checked where the test awaited it
        known, declared = declared_codes_of_path(path)
        if not known or (declared is not None and code in declared):
            continue
        if declared is None and code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
            continue  # no option: only what no contract promises is refused
        found.append(
            f"{span.service} answered {path.lstrip('/')} with {code.name}, which it does not "
            f"declare ({describe_declared(declared)})\n"
            f"    caller: {caller}; trace {span.trace_id}\n"
            f"    request: {_request(spans, span)}"
        )
    return found


def _import_protos(specs: Iterable[ServiceSpec]) -> None:
    # The declared codes are read from the descriptors: the services' _pb2 modules must
    # be imported in this process (a stack of only the gateway never imports them).
    for spec in specs:
        if spec.proto_module:
            with contextlib.suppress(ImportError):
                importlib.import_module(spec.proto_module)


async def check_stack_calls(
    node: pytest.Item,
    receiver: TraceReceiver,
    services: Collection[str],
    specs: Iterable[ServiceSpec],
    ended: float,
) -> None:
    """Fail ``node`` (``pytest.fail``, at its teardown) when a call between ``services`` answered a
    status its RPC does not declare; nothing to do under ``allow_undeclared_codes``."""
    __tracebackhide__ = True
    if node.get_closest_marker("allow_undeclared_codes") is not None or not services:
        return
    _import_protos(spec for spec in specs if spec.name in services)
    spans = await settled_spans(receiver, ended)
    found = undeclared_answers(spans, services)
    if found:
        # The report names the request each such call served, from the spans above it; a
        # caller's span can come a batch after its callee's on a busy machine: wait for
        # them (bounded), on this failure path only.
        give_up = time.monotonic() + SETTLE_TIMEOUT
        while _a_parent_missing(spans, services) and time.monotonic() < give_up:
            await asyncio.sleep(QUIET)
            spans = receiver.snapshot()
        found = undeclared_answers(spans, services)
        # a message alone in the report (an error at teardown), no traceback of fixtures
        pytest.fail(
            f"UndeclaredStatusError: {len(found)} call(s) between the stack's services "
            "answered a status their contract does not declare:\n  "
            + "\n  ".join(found)
            + "\n  Either the service is wrong (fix it), or its contract is (add the code "
            "to the RPC's (kit.v1.may_return) option and tell its consumers); a test that "
            "breaks a provider on purpose: @pytest.mark.allow_undeclared_codes.",
            pytrace=False,
        )
