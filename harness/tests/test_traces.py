"""The trace receiver and trace assertions.

Assertions are checked on hand-built traces (no network); the receiver is checked
against the real OpenTelemetry SDK exporting over OTLP/gRPC (integration).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from harness import (
    LogRecords,
    Span,
    Trace,
    TraceAssertionError,
    TraceReceiver,
    assert_logs_carry_trace,
    traceparent,
)
from harness.traces import spans_from_request

TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER_TRACE = "1bf7651916cd43dd8448eb211c80319d"
MS = 1_000_000
T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in ns


def span(
    span_id: str,
    parent: str | None,
    name: str,
    service: str,
    start_ms: int,
    end_ms: int,
    *,
    kind: str = "SERVER",
    code: int | None = 0,
    status: str = "UNSET",
    trace_id: str = TRACE,
) -> Span:
    attributes: dict[str, object] = {} if code is None else {"rpc.grpc.status_code": code}
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        service=service,
        kind=kind,  # type: ignore[arg-type]
        start_ns=T0 + start_ms * MS,
        end_ns=T0 + end_ms * MS,
        status=status,  # type: ignore[arg-type]
        attributes=attributes,  # type: ignore[arg-type]
    )


CLIENT = span("00000000000000a1", None, "client span", "test", 0, 40, kind="CLIENT", code=None)
GATEWAY = span(
    "00000000000000b1", CLIENT.span_id, "GET /entities/{id}", "gateway", 1, 39, code=None
)
DUMMY = span(
    "00000000000000c1", GATEWAY.span_id, "/dummy.v1.DummyService/CreateEntity", "dummy", 3, 30
)
USER_CLIENT = span(
    "00000000000000c2", DUMMY.span_id, "/user.v1.UserService/GetUser", "dummy", 5, 12, kind="CLIENT"
)
USER = span("00000000000000d1", USER_CLIENT.span_id, "/user.v1.UserService/GetUser", "user", 6, 11)
INSERT = span(
    "00000000000000c3", DUMMY.span_id, "INSERT", "dummy", 14, 20, kind="CLIENT", code=None
)

GOOD = [CLIENT, GATEWAY, DUMMY, USER_CLIENT, USER, INSERT]

GOOD_RENDERED = """\
trace 0af7651916cd43dd8448eb211c80319c: 6 spans, services dummy, gateway, test, user
└── [test] client span (CLIENT)  40.0 ms
    └── [gateway] GET /entities/{id} (SERVER)  38.0 ms
        └── [dummy] /dummy.v1.DummyService/CreateEntity (SERVER)  27.0 ms  grpc=OK
            ├── [dummy] /user.v1.UserService/GetUser (CLIENT)  7.0 ms  grpc=OK
            │   └── [user] /user.v1.UserService/GetUser (SERVER)  5.0 ms  grpc=OK
            └── [dummy] INSERT (CLIENT)  6.0 ms"""


def test_every_assertion_passes_on_a_good_trace() -> None:
    trace = Trace(GOOD)
    trace.assert_single_trace().assert_no_orphans()
    trace.assert_services(["test", "gateway", "dummy", "user"])
    trace.assert_services(["dummy", "user"], exact=False)
    trace.assert_rpc("dummy.v1.DummyService/CreateEntity", service="dummy", code="OK")
    trace.assert_rpc("/user.v1.UserService/GetUser", service="user")
    trace.assert_path(
        "client span", "dummy.v1.DummyService/CreateEntity", "user.v1.UserService/GetUser"
    )
    trace.assert_path("GET /entities/{id}", "INSERT")
    trace.assert_status("user.v1.UserService/GetUser", grpc.StatusCode.OK)
    trace.assert_span_status("INSERT", "UNSET")
    assert trace.trace_id == TRACE
    assert trace.span("user.v1.UserService/GetUser", service="user") == USER
    assert trace.span("INSERT").duration_ms == 6.0
    assert [root.name for root in trace.roots] == ["client span"]


def test_rendering_is_a_tree_ordered_by_start_time_whatever_the_arrival_order() -> None:
    assert Trace(GOOD).render() == GOOD_RENDERED
    assert Trace(reversed(GOOD)).render() == GOOD_RENDERED
    assert Trace([GOOD[i] for i in (4, 1, 5, 0, 3, 2)]).render() == GOOD_RENDERED


def with_status(code: int) -> list[Span]:
    failed = span(USER.span_id, USER.parent_span_id, USER.name, "user", 6, 11, code=code)
    failed_client = span(
        USER_CLIENT.span_id, DUMMY.span_id, USER.name, "dummy", 5, 12, kind="CLIENT", code=code
    )
    return [CLIENT, GATEWAY, DUMMY, failed_client, failed, INSERT]


FAILURES: dict[str, tuple[list[Span], Callable[[Trace], object], str]] = {
    "two trace ids": (
        [
            *GOOD,
            span(
                "00000000000000e1",
                None,
                "/user.v1.UserService/GetUser",
                "user",
                7,
                9,
                trace_id=OTHER_TRACE,
            ),
        ],
        lambda trace: trace.assert_single_trace(),
        "got 2 trace ids",
    ),
    "an orphan": (
        [s for s in GOOD if s is not USER_CLIENT],  # the user span's parent went missing
        lambda trace: trace.assert_no_orphans(),
        "1 span(s) whose parent is not in the trace",
    ),
    "a missing service": (
        [s for s in GOOD if s is not USER],
        lambda trace: trace.assert_services(["test", "gateway", "dummy", "user"]),
        "missing ['user']",
    ),
    "an unexpected service": (
        GOOD,
        lambda trace: trace.assert_services(["test", "gateway", "dummy"]),
        "unexpected ['user']",
    ),
    "a missing rpc": (
        [s for s in GOOD if s is not USER],
        lambda trace: trace.assert_rpc("user.v1.UserService/GetUser"),
        "no SERVER span named 'user.v1.UserService/GetUser'",
    ),
    "wrong nesting": (
        GOOD,
        lambda trace: trace.assert_path(
            "user.v1.UserService/GetUser", "dummy.v1.DummyService/CreateEntity"
        ),
        "no chain of nested spans",
    ),
    "siblings are not nested": (
        GOOD,
        lambda trace: trace.assert_path("user.v1.UserService/GetUser", "INSERT"),
        "no chain of nested spans",
    ),
    "wrong status": (
        with_status(5),
        lambda trace: trace.assert_status("user.v1.UserService/GetUser", "OK"),
        "expected gRPC status OK for 'user.v1.UserService/GetUser', got NOT_FOUND",
    ),
    "wrong status in assert_rpc": (
        with_status(13),
        lambda trace: trace.assert_rpc("user.v1.UserService/GetUser", code="NOT_FOUND"),
        "expected gRPC status NOT_FOUND",
    ),
    "ambiguous span lookup": (
        GOOD,
        lambda trace: trace.span("user.v1.UserService/GetUser"),
        "2 spans named",
    ),
    "no such span": (
        GOOD,
        lambda trace: trace.span("DELETE"),
        "no span named 'DELETE'",
    ),
    "wrong span status": (
        GOOD,
        lambda trace: trace.assert_span_status("INSERT", "ERROR"),
        "expected status ERROR for 'INSERT', got UNSET",
    ),
}


@pytest.mark.parametrize(("spans", "check", "expected"), FAILURES.values(), ids=FAILURES.keys())
def test_a_failed_assertion_says_why_and_draws_the_tree(
    spans: list[Span], check: Callable[[Trace], object], expected: str
) -> None:
    trace = Trace(spans)
    with pytest.raises(TraceAssertionError) as failure:
        check(trace)
    message = str(failure.value)
    assert expected in message
    assert message.endswith(trace.render())
    assert "└── [test] client span (CLIENT)" in message or "(parent" in message


def test_an_orphan_is_drawn_as_an_extra_root_naming_its_missing_parent() -> None:
    rendered = Trace([s for s in GOOD if s is not USER_CLIENT]).render()
    assert (
        "└── [user] /user.v1.UserService/GetUser (SERVER)  5.0 ms  grpc=OK"
        "  (parent 00000000000000c2 not in trace)"
    ) in rendered
    assert Trace(GOOD).assert_no_orphans(remote_parent=None)  # nothing to excuse


def test_a_made_up_traceparent_can_be_excused_as_remote_parent() -> None:
    trace = Trace([s for s in GOOD if s is not CLIENT])
    with pytest.raises(TraceAssertionError):
        trace.assert_no_orphans()
    trace.assert_no_orphans(remote_parent=CLIENT.span_id)


def test_an_error_status_is_rendered_with_its_message() -> None:
    failed = Span(
        TRACE,
        "00000000000000f1",
        None,
        "/dummy.v1.DummyService/GetEntity",
        "dummy",
        "SERVER",
        T0,
        T0 + 2 * MS,
        "ERROR",
        "StatusCode.INTERNAL:internal error",
        {"rpc.grpc.status_code": 13},
    )
    assert (
        Trace([failed])
        .render()
        .endswith(
            "└── [dummy] /dummy.v1.DummyService/GetEntity (SERVER)  2.0 ms  grpc=INTERNAL"
            "  ERROR: StatusCode.INTERNAL:internal error"
        )
    )


def test_an_unknown_status_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not a gRPC status code name"):
        Trace(GOOD).assert_status("user.v1.UserService/GetUser", "MISSING")


def test_export_requests_become_spans_with_their_service_and_attributes() -> None:
    def value(**kwargs: object) -> common_pb2.AnyValue:
        return common_pb2.AnyValue(**kwargs)  # type: ignore[arg-type]

    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(
                    attributes=[
                        common_pb2.KeyValue(key="service.name", value=value(string_value="dummy"))
                    ]
                ),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        spans=[
                            trace_pb2.Span(
                                trace_id=bytes.fromhex(TRACE),
                                span_id=bytes.fromhex("00000000000000c1"),
                                name="/dummy.v1.DummyService/GetEntity",
                                kind=trace_pb2.Span.SPAN_KIND_SERVER,
                                start_time_unix_nano=T0,
                                end_time_unix_nano=T0 + MS,
                                status=trace_pb2.Status(
                                    code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"
                                ),
                                attributes=[
                                    common_pb2.KeyValue(key="s", value=value(string_value="x")),
                                    common_pb2.KeyValue(key="i", value=value(int_value=5)),
                                    common_pb2.KeyValue(key="b", value=value(bool_value=True)),
                                    common_pb2.KeyValue(key="d", value=value(double_value=0.5)),
                                    common_pb2.KeyValue(
                                        key="a",
                                        value=value(
                                            array_value=common_pb2.ArrayValue(
                                                values=[
                                                    value(int_value=1),
                                                    value(string_value="two"),
                                                ]
                                            )
                                        ),
                                    ),
                                ],
                            ),
                            trace_pb2.Span(
                                trace_id=bytes.fromhex(TRACE),
                                span_id=bytes.fromhex("00000000000000c2"),
                                parent_span_id=bytes.fromhex("00000000000000c1"),
                                name="SELECT",
                                kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                            ),
                        ]
                    )
                ],
            )
        ]
    )
    server, query = spans_from_request(request)
    assert server == Span(
        TRACE,
        "00000000000000c1",
        None,
        "/dummy.v1.DummyService/GetEntity",
        "dummy",
        "SERVER",
        T0,
        T0 + MS,
        "ERROR",
        "boom",
        {"s": "x", "i": 5, "b": True, "d": 0.5, "a": (1, "two")},
    )
    assert (query.parent_span_id, query.kind, query.service, query.status) == (
        "00000000000000c1",
        "CLIENT",
        "dummy",
        "UNSET",
    )


# ---------------------------------------------------------------------------- logs


def line(service: str, ms: float, message: str, trace_id: str | None, span_id: str | None) -> str:
    ns = T0 + int(ms * MS)
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    micros = ns // 1000 % 1_000_000
    record: dict[str, str | None] = {
        "time": f"{moment}.{micros:06d}Z",
        "level": "INFO",
        "name": "servicekit.access",
        "service": service,
        "message": message,
    }
    if trace_id is not None:
        record |= {"trace_id": trace_id, "span_id": span_id}
    return json.dumps(record)


GOOD_LOGS = [
    line("dummy", -50, "serving", None, None),
    "a stray print, not JSON",
    line("user", 10.5, "GetUser OK", TRACE, USER.span_id),
    line("dummy", 29, "CreateEntity OK", TRACE, DUMMY.span_id),
    line("gateway", 38, "GET /entities/1 200", TRACE, GATEWAY.span_id),
    line("dummy", 45, "another request later", OTHER_TRACE, "00000000000000e1"),
    line("dummy", 31, "a background line without trace, just after", None, None),
    line("dummy", 25, "a line without trace during the request: not counted", None, None),
]


def test_the_log_lines_of_a_request_carry_its_trace() -> None:
    records = LogRecords.parse(GOOD_LOGS)
    assert len(records) == 7
    assert records.unparsed == ("a stray print, not JSON",)
    assert records[2].time_ns == T0 + 29 * MS
    assert [r.message for r in records.with_trace(TRACE)] == [
        "GetUser OK",
        "CreateEntity OK",
        "GET /entities/1 200",
    ]
    assert_logs_carry_trace(GOOD_LOGS, Trace(GOOD))
    assert_logs_carry_trace(records, Trace(GOOD), services=["dummy"])


LOG_FAILURES = {
    "a service logs nothing with the trace id": (
        [line("user", 10.5, "GetUser OK", None, None), *GOOD_LOGS[3:]],
        "no log record of 'user' carries trace id",
    ),
    "another trace id inside the request's window": (
        [*GOOD_LOGS, line("dummy", 20, "leaked context", OTHER_TRACE, "00000000000000e2")],
        "logged during the request with another trace id: [dummy] INFO 'leaked context'",
    ),
    "a span id that is not in the trace": (
        [*GOOD_LOGS, line("dummy", 20, "from a lost span", TRACE, "00000000000000ff")],
        "names a span that is not in the trace: [dummy] INFO 'from a lost span'",
    ),
}


@pytest.mark.parametrize(("lines", "expected"), LOG_FAILURES.values(), ids=LOG_FAILURES.keys())
def test_log_lines_that_lose_the_trace_fail_with_the_tree(lines: list[str], expected: str) -> None:
    with pytest.raises(TraceAssertionError) as failure:
        assert_logs_carry_trace(lines, Trace(GOOD))
    assert expected in str(failure.value)
    assert str(failure.value).endswith(Trace(GOOD).render())


# ---------------------------------------------------------------------------- the receiver


@pytest.fixture
def receiver() -> Iterator[TraceReceiver]:
    with TraceReceiver() as started:
        yield started


def sdk_provider(service: str, endpoint: str, delay_ms: int = 50) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), shutdown_on_exit=False
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=delay_ms)
    )
    return provider


@pytest.mark.integration
async def test_the_receiver_collects_what_a_real_otlp_exporter_sends(
    receiver: TraceReceiver,
) -> None:
    assert receiver.endpoint == f"http://127.0.0.1:{receiver.port}"
    provider = sdk_provider("dummy", receiver.endpoint)
    try:
        tracer = provider.get_tracer("test")
        with receiver.client_span("create entity") as call:
            context = extract({"traceparent": call.traceparent})
            with tracer.start_as_current_span(
                "/dummy.v1.DummyService/CreateEntity",
                context=context,
                kind=SpanKind.SERVER,
                attributes={"rpc.grpc.status_code": 5, "rpc.service": "dummy.v1.DummyService"},
            ) as server_span:
                server_span.set_status(Status(StatusCode.ERROR, "bad"))
                with tracer.start_as_current_span("INSERT", kind=SpanKind.CLIENT):
                    pass
        # exported now: the batch's first export (a new connection) can take longer than
        # the settle time on a loaded machine, and trace() would end before it arrives
        provider.force_flush()
        started = time.monotonic()
        trace = await receiver.trace(call.trace_id)
        waited = time.monotonic() - started
    finally:
        provider.shutdown()
    trace.assert_single_trace().assert_no_orphans().assert_services(["test", "dummy"])
    trace.assert_path("create entity", "dummy.v1.DummyService/CreateEntity", "INSERT")
    trace.assert_status("dummy.v1.DummyService/CreateEntity", "NOT_FOUND")
    trace.assert_span_status("dummy.v1.DummyService/CreateEntity", "ERROR")
    server = trace.span("dummy.v1.DummyService/CreateEntity")
    assert (server.kind, server.service, server.parent_span_id) == ("SERVER", "dummy", call.span_id)
    assert server.attributes["rpc.service"] == "dummy.v1.DummyService"
    assert server.status_message == "bad"
    assert waited < 2, f"trace() took {waited:.2f}s"


@pytest.mark.integration
async def test_trace_waits_for_spans_that_arrive_later_in_another_batch(
    receiver: TraceReceiver,
) -> None:
    upstream = sdk_provider("gateway", receiver.endpoint, delay_ms=20)
    downstream = sdk_provider("user", receiver.endpoint, delay_ms=20)
    try:
        with receiver.client_span() as call:
            context = extract({"traceparent": call.traceparent})
            with upstream.get_tracer("t").start_as_current_span("outer", context=context):
                pass
        upstream.force_flush()

        def late_export() -> None:
            time.sleep(0.15)  # the "slow service": its batch comes 150 ms after the first
            context = extract({"traceparent": traceparent(call.trace_id, call.span_id)})
            with downstream.get_tracer("t").start_as_current_span("late", context=context):
                pass
            downstream.force_flush()

        thread = threading.Thread(target=late_export)
        thread.start()
        # The quiet window is long beside the 150 ms, so that a loaded machine's late
        # thread still lands inside it.
        trace = await receiver.trace(call.trace_id, settle=1.0)
        thread.join()
    finally:
        upstream.shutdown()
        downstream.shutdown()
    trace.assert_services(["test", "gateway", "user"])


@pytest.mark.integration
def test_trace_sync_returns_once_spans_settle(receiver: TraceReceiver) -> None:
    threading.Timer(
        0.1, receiver.add, args=([span("00000000000000a9", None, "late", "svc", 0, 1)],)
    ).start()
    started = time.monotonic()
    trace = receiver.trace_sync(TRACE, settle=0.05, timeout=5)
    assert [s.name for s in trace.spans] == ["late"]
    assert 0.1 <= time.monotonic() - started < 2


@pytest.mark.integration
async def test_trace_wakes_up_when_the_first_span_arrives(receiver: TraceReceiver) -> None:
    # Nothing has arrived when the wait starts: only the arrival can end it early.
    threading.Timer(
        0.1, receiver.add, args=([span("00000000000000a9", None, "late", "svc", 0, 1)],)
    ).start()
    started = time.monotonic()
    trace = await receiver.trace(TRACE, settle=0.05, timeout=5)
    assert [s.name for s in trace.spans] == ["late"]
    assert 0.1 <= time.monotonic() - started < 2


@pytest.mark.integration
async def test_a_trace_that_never_comes_fails_with_the_remedy_after_the_timeout(
    receiver: TraceReceiver,
) -> None:
    started = time.monotonic()
    with pytest.raises(TraceAssertionError, match="OTEL_EXPORTER_OTLP_ENDPOINT") as failure:
        await receiver.trace(TRACE, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2
    assert f"no span of trace {TRACE} arrived at {receiver.endpoint}" in str(failure.value)


@pytest.mark.integration
async def test_everything_since_clear_shows_a_request_that_made_two_traces(
    receiver: TraceReceiver,
) -> None:
    receiver.add([span("00000000000000a8", None, "before the test", "svc", 0, 1)])
    receiver.clear()
    assert receiver.trace_ids() == []
    receiver.add([now(DUMMY)])
    receiver.add(
        [now(span("00000000000000e1", None, "lost context", "user", 7, 9, trace_id=OTHER_TRACE))]
    )
    everything = await receiver.trace(None, settle=0.05)
    assert everything.trace_ids == [TRACE, OTHER_TRACE]
    with pytest.raises(TraceAssertionError, match="got 2 trace ids"):
        everything.assert_single_trace()


def now(span: Span) -> Span:
    """``span`` moved to begin now (after any clear so far), keeping its duration."""
    start = time.time_ns()
    return replace(span, start_ns=start, end_ns=start + span.end_ns - span.start_ns)


@pytest.mark.integration
async def test_a_span_that_began_before_the_clear_and_arrives_after_it_is_not_kept(
    receiver: TraceReceiver,
) -> None:
    # what a service's start-up (its migrations) or the test before sends late, in a batch
    began = time.time_ns()
    startup = span("00000000000000c1", None, "migrate", "user", 0, 1, trace_id=OTHER_TRACE)
    startup = replace(startup, start_ns=began, end_ns=began + MS)
    receiver.clear()
    dropped = receiver.dropped_from_before_clear
    receiver.add([startup, now(DUMMY)])
    assert receiver.trace_ids() == [TRACE]
    assert receiver.dropped_from_before_clear == dropped + 1
    everything = await receiver.trace(None, settle=0.05)
    everything.assert_single_trace()


@pytest.mark.integration
def test_spans_exported_concurrently_by_many_threads_are_all_kept(receiver: TraceReceiver) -> None:
    providers = [sdk_provider(f"svc{i}", receiver.endpoint, delay_ms=10) for i in range(4)]

    def work(provider: TracerProvider) -> None:
        tracer = provider.get_tracer("t")
        context = extract({"traceparent": traceparent(TRACE, "00000000000000a1")})
        for _ in range(50):
            with tracer.start_as_current_span("op", context=context):
                pass
        provider.force_flush()

    threads = [threading.Thread(target=work, args=(p,)) for p in providers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        trace = receiver.trace_sync(TRACE, settle=0.1)
    finally:
        for provider in providers:
            provider.shutdown()
    assert len(trace) == 200
    assert len({s.span_id for s in trace.spans}) == 200


def test_client_span_records_a_failed_call_as_error() -> None:
    receiver = TraceReceiver()  # not started: client spans need no server
    with pytest.raises(RuntimeError), receiver.client_span("failing call") as call:
        raise RuntimeError("refused")
    recorded = receiver.snapshot(call.trace_id).span("failing call")
    assert (recorded.status, recorded.status_message) == ("ERROR", "RuntimeError: refused")
    assert call.metadata == (("traceparent", f"00-{call.trace_id}-{call.span_id}-01"),)
    assert call.headers == {"traceparent": call.traceparent}


@pytest.mark.integration
def test_a_wildcard_bind_advertises_loopback_or_the_given_host() -> None:
    with TraceReceiver("0.0.0.0") as wildcard:  # noqa: S104
        assert wildcard.endpoint == f"http://127.0.0.1:{wildcard.port}"
    with TraceReceiver("0.0.0.0", advertised_host="172.17.0.1") as advertised:  # noqa: S104
        assert advertised.endpoint == f"http://172.17.0.1:{advertised.port}"


def database_span(span_id: str, parent: str, service: str, *, system: str = "postgresql") -> Span:
    query = span(span_id, parent, "SELECT", service, 7, 9, kind="CLIENT", code=None)
    key = "db.system" if system != "new-convention" else "db.system.name"
    return replace(query, attributes={key: "postgresql"})


@pytest.mark.parametrize(
    ("spans", "service", "under", "system", "problem"),
    [
        ([*GOOD, database_span("e1", USER.span_id, "user")], "user", USER.name, "postgresql", None),
        (
            [*GOOD, database_span("e1", USER.span_id, "user", system="new-convention")],
            "user",
            USER.name,
            None,
            None,
        ),
        (
            [*GOOD, database_span("e1", USER.span_id, "user")],
            "user",
            None,
            "mysql",
            "no mysql database span of 'user'",
        ),
        (GOOD, "dummy", None, None, "no database span of 'dummy'"),  # INSERT has no db.system
        ([*GOOD, database_span("e1", DUMMY.span_id, "user")], "user", USER.name, None, "not under"),
    ],
    ids=["nested", "db.system.name", "other-system", "no-attribute", "outside-its-rpc"],
)
def test_assert_database(
    spans: list[Span], service: str, under: str | None, system: str | None, problem: str | None
) -> None:
    trace = Trace(spans)
    if problem is None:
        trace.assert_database(service, under=under, system=system)
        assert [s.span_id for s in trace.database_spans(service)] == ["e1"]
    else:
        with pytest.raises(TraceAssertionError, match=problem):
            trace.assert_database(service, under=under, system=system)
