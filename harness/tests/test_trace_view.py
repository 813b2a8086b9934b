"""The live trace view (what ``make dev`` serves), the bounded receiver and the forwarder.

Spans go in as a service sends them: OTLP/gRPC export requests to the receiver's port;
the pages come out over HTTP, as a browser fetches them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from harness import LogFiles, OtlpForwarder, TraceReceiver, TraceView

pytestmark = pytest.mark.integration  # gRPC and HTTP servers on loopback ports

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


def trace_id(number: int) -> str:
    return f"{number:032x}"


def otlp_span(
    trace: str,
    span_id: str,
    parent: str | None,
    name: str,
    start_ms: float,
    end_ms: float,
    *,
    failed: bool = False,
    http_status: int | None = None,
) -> trace_pb2.Span:
    attributes = (
        []
        if http_status is None
        else [
            common_pb2.KeyValue(
                key="http.response.status_code", value=common_pb2.AnyValue(int_value=http_status)
            )
        ]
    )
    return trace_pb2.Span(
        attributes=attributes,
        trace_id=bytes.fromhex(trace),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=name,
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=T0 + int(start_ms * MS),
        end_time_unix_nano=T0 + int(end_ms * MS),
        status=trace_pb2.Status(
            code=trace_pb2.Status.STATUS_CODE_ERROR
            if failed
            else trace_pb2.Status.STATUS_CODE_UNSET,
            message="boom" if failed else "",
        ),
    )


def request(service: str, *spans: trace_pb2.Span) -> trace_service_pb2.ExportTraceServiceRequest:
    resource = resource_pb2.Resource(
        attributes=[
            common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service))
        ]
    )
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=list(spans))]
            )
        ]
    )


def export(endpoint: str, *requests: trace_service_pb2.ExportTraceServiceRequest) -> None:
    """What a service's OTLP exporter does: one Export call per request."""
    with grpc.insecure_channel(endpoint.removeprefix("http://")) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
        for item in requests:
            stub.Export(item, timeout=10)


def a_request_trace(
    number: int, start_ms: float, *, failed: bool = False
) -> list[trace_service_pb2.ExportTraceServiceRequest]:
    """A gateway request calling user, sent as two services send it (two exports)."""
    trace = trace_id(number)
    root, child = f"{number:08x}00000001", f"{number:08x}00000002"
    return [
        request(
            "user",
            otlp_span(trace, child, root, "GetUser", start_ms + 2, start_ms + 6, failed=failed),
        ),
        request(
            "gateway",
            otlp_span(
                trace,
                root,
                None,
                f"GET /things/{number}",
                start_ms,
                start_ms + 10,
                http_status=502 if failed else 200,
            ),
        ),
    ]


def listed(page: str) -> list[str]:
    """The trace ids of the list page's rows, top to bottom."""
    return re.findall(r'<tr class="trace-row[^"]*" data-trace-id="([0-9a-f]+)"', page)


def rows(page: str) -> list[tuple[str, str, str]]:
    """(service, depth, status) of each span row of a trace page, top to bottom."""
    return re.findall(
        r'<div class="span[^"]*" data-span-id="[0-9a-f]+" data-service="([^"]*)" '
        r'data-depth="(\d+)" data-status="(\w+)"',
        page,
    )


@pytest.fixture
def receiver() -> Iterator[TraceReceiver]:
    with TraceReceiver(max_traces=3) as started:
        yield started


@pytest.fixture
def http(receiver: TraceReceiver) -> Iterator[httpx.Client]:
    with TraceView(receiver) as view, httpx.Client(base_url=view.url, timeout=10) as client:
        yield client


def test_the_list_shows_the_last_traces_newest_first_each_opening_its_waterfall(
    receiver: TraceReceiver, http: httpx.Client
) -> None:
    # four traces into a receiver that keeps three: the first to arrive is forgotten
    for number, start_ms in [(1, 0), (2, 300), (3, 100), (4, 200)]:
        export(receiver.endpoint, *a_request_trace(number, start_ms, failed=number == 3))
    assert len(receiver.snapshot()) == 6  # Export returned: the spans are stored

    front = http.get("/")

    assert front.status_code == 200
    assert front.headers["content-type"] == "text/html; charset=utf-8"
    assert listed(front.text) == [trace_id(2), trace_id(4), trace_id(3)]  # by start, newest first
    assert "1 older ones forgotten" in front.text
    assert f"received at {receiver.endpoint}" in front.text
    row = re.search(
        rf'<tr class="trace-row failed" data-trace-id="{trace_id(3)}">(.*?)</tr>', front.text
    )
    assert row, front.text
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row[1])
    assert cells[1] == f'<a href="/traces/{trace_id(3)}">GET /things/3</a>'
    assert cells[2:7] == ["502", "gateway, user", "2", "10.0 ms", "1"]

    page = http.get(f"/traces/{trace_id(3)}")

    assert page.status_code == 200
    assert rows(page.text) == [("gateway", "0", "UNSET"), ("user", "1", "ERROR")]
    assert "ERROR: boom" in page.text
    assert '<a href="/">← recent traces</a>' in page.text
    assert http.get(f"/traces/{trace_id(4)}").status_code == 200
    assert trace_id(1) not in front.text


@pytest.mark.parametrize(
    ("path", "says"),
    [
        (f"/traces/{trace_id(1)}", "the last 3 are kept"),
        ("/traces/not-an-id", "a trace at /traces/&lt;32 hex digits of its id&gt;"),
        ("/favicon.ico", "Nothing at /favicon.ico"),
    ],
    ids=["forgotten or never seen", "not a trace id", "another path"],
)
def test_what_is_not_there_is_a_404_page_that_says_why(
    http: httpx.Client, path: str, says: str
) -> None:
    answer = http.get(path)

    assert answer.status_code == 404
    assert says in answer.text
    assert '<a href="/">recent traces</a>' in answer.text


def test_an_empty_view_says_so(http: httpx.Client) -> None:
    assert "<p>No traces yet.</p>" in http.get("/").text


def test_names_from_spans_are_escaped_in_the_list(
    receiver: TraceReceiver, http: httpx.Client
) -> None:
    hostile = '<script>alert("x")</script>'
    export(
        receiver.endpoint, request(hostile, otlp_span(trace_id(9), "9" * 16, None, hostile, 0, 1))
    )

    front = http.get("/").text

    assert "<script" not in front
    assert unescape(front).count(hostile) == 2  # the span's name and its service


def test_a_trace_page_shows_the_log_lines_written_since_the_view_started(
    tmp_path: Path, receiver: TraceReceiver
) -> None:
    log = tmp_path / "user.log"
    trace = trace_id(5)

    def line(message: str) -> str:
        return (
            f'{{"time": "2023-11-14T22:13:20.003+00:00", "service": "user", "level": "ERROR", '
            f'"message": "{message}", "trace_id": "{trace}", "span_id": "0000000500000002"}}\n'
        )

    log.write_text(line("from an earlier run"))
    files = LogFiles([log, tmp_path / "not-yet-written.log"])
    with log.open("a") as file:
        file.write("a traceback line, not JSON\n" + line("user u-1 not found"))
    export(receiver.endpoint, *a_request_trace(5, 0, failed=True))

    with TraceView(receiver, logs=files.records) as view:
        page = httpx.get(f"{view.url}traces/{trace}", timeout=10).text

    assert "+3.0 ms [user] ERROR user u-1 not found" in page
    assert "1 log line" in page
    assert "from an earlier run" not in page


def test_a_taken_port_is_a_clear_error(receiver: TraceReceiver) -> None:
    with TraceView(receiver) as first, pytest.raises(OSError, match="choose another port"):
        TraceView(receiver, port=first.port).start()


def test_the_receiver_refuses_to_keep_no_traces() -> None:
    with pytest.raises(ValueError, match="max_traces must be at least 1"):
        TraceReceiver(max_traces=0)


# ------------------------------------------------------------------------ forwarding


def test_what_the_view_receives_is_forwarded_to_the_users_collector() -> None:
    with TraceReceiver() as collector:
        forwarder = OtlpForwarder.from_environment(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
        )
        assert forwarder is not None
        with forwarder, TraceReceiver(max_traces=10, on_export=forwarder.submit) as local:
            export(local.endpoint, *a_request_trace(7, 0, failed=True))
            there = collector.trace_sync(trace_id(7), timeout=10)

        assert there.spans == local.snapshot(trace_id(7)).spans
        assert len(there) == 2
        assert forwarder.forwarded == 2
        assert forwarder.describe() == f"2 export requests forwarded to {collector.endpoint}"


def test_a_collector_that_is_down_loses_its_copy_not_the_views() -> None:
    with TraceReceiver() as gone:
        endpoint = gone.endpoint  # a port that was just free, now closed
    forwarder = OtlpForwarder(endpoint, timeout=2)
    with forwarder, TraceReceiver(on_export=forwarder.submit) as local:
        started = time.monotonic()
        export(local.endpoint, *a_request_trace(8, 0))
        assert time.monotonic() - started < 2  # the export did not wait for the collector
        assert len(local.snapshot(trace_id(8))) == 2
    assert forwarder.dropped == 2
    assert forwarder.forwarded == 0
    assert "2 dropped (last error: StatusCode.UNAVAILABLE" in forwarder.describe()


@pytest.mark.parametrize(
    ("environ", "endpoint"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"}, "http://jaeger:4317"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4317",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example:443",
            },
            "https://traces.example:443",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"}, "localhost:4317"),
    ],
    ids=["none", "blank", "general", "traces variable wins", "no scheme"],
)
def test_the_forwarder_reads_the_standard_variables(
    environ: dict[str, str], endpoint: str | None
) -> None:
    forwarder = OtlpForwarder.from_environment(environ)

    assert (forwarder.endpoint if forwarder else None) == endpoint


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://jaeger:4317"}, "is not http://host:port"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger"}, "is not http://host:port"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317",
                "OTEL_EXPORTER_OTLP_HEADERS": "x",
            },
            "'x' is not key=value",
        ),
    ],
    ids=["another scheme", "no port", "bad headers"],
)
def test_bad_otlp_variables_are_a_clear_error(environ: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        OtlpForwarder.from_environment(environ)
