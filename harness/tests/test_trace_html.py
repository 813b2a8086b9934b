"""The HTML trace page: rows in tree order, to scale, one colour per service, escaped."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness import LogRecord, Span, render_trace_html
from harness.traces.html import SERVICE_COLOURS

TRACE = "ab" * 16
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


def span(
    span_id: str,
    parent: str | None,
    name: str,
    service: str,
    start_ms: float,
    end_ms: float,
    *,
    status: str = "UNSET",
    trace_id: str = TRACE,
    attributes: dict[str, object] | None = None,
) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        service=service,
        kind="SERVER" if parent else "CLIENT",
        start_ns=T0 + int(start_ms * MS),
        end_ns=T0 + int(end_ms * MS),
        status=status,  # type: ignore[arg-type]
        status_message="boom" if status == "ERROR" else "",
        attributes=attributes or {},  # type: ignore[arg-type]
    )


# test (0-100 ms) -> gateway (10-90) -> user (20-40, failed), db (50-60 under gateway)
SPANS = [
    span("0000000000000004", "0000000000000002", "SELECT", "gateway", 50, 60),
    span("0000000000000003", "0000000000000002", "GetUser", "user", 20, 40, status="ERROR"),
    span("0000000000000001", None, "test call", "test", 0, 100),
    span("0000000000000002", "0000000000000001", "POST /entities", "gateway", 10, 90),
]


@dataclass
class Row:
    """One ``div.span`` of the page, as a browser would read it."""

    attributes: dict[str, str]
    bar_style: str = ""
    text: list[str] = field(default_factory=list)

    @property
    def css_classes(self) -> set[str]:
        return set(self.attributes["class"].split())

    def bar(self, prop: str) -> str:
        match = re.search(rf"(?:^|;){prop}:([^;]+)", self.bar_style)
        assert match, f"{prop} not in {self.bar_style!r}"
        return match[1]


class Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self._depth_in_row = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "div" and "span" in values.get("class", "").split():
            self.rows.append(Row(values))
            self._depth_in_row = 1
            return
        if self._depth_in_row and tag == "div":
            self._depth_in_row += 1
            if "bar" in values.get("class", "").split():
                self.rows[-1].bar_style = values["style"]

    def handle_endtag(self, tag: str) -> None:
        if self._depth_in_row and tag == "div":
            self._depth_in_row -= 1

    def handle_data(self, data: str) -> None:
        if self._depth_in_row:
            self.rows[-1].text.append(data)


def rows_of(page: str) -> list[Row]:
    parser = Rows()
    parser.feed(page)
    return parser.rows


def test_rows_are_in_tree_order_indented_by_depth() -> None:
    rows = rows_of(render_trace_html(SPANS))

    assert [(row.attributes["data-span-id"][-1], row.attributes["data-depth"]) for row in rows] == [
        ("1", "0"),
        ("2", "1"),
        ("3", "2"),  # GetUser began before SELECT: first child
        ("4", "2"),
    ]


def test_bars_are_to_scale_on_the_trace_time_axis() -> None:
    rows = {row.attributes["data-span-id"][-1]: row for row in rows_of(render_trace_html(SPANS))}

    expected = {"1": (0, 100), "2": (10, 80), "3": (20, 20), "4": (50, 10)}
    for span_id, (left, width) in expected.items():
        assert float(rows[span_id].bar("left").rstrip("%")) == pytest.approx(left)
        assert float(rows[span_id].bar("width").rstrip("%")) == pytest.approx(width)


def test_each_service_has_one_colour_and_services_differ() -> None:
    rows = rows_of(render_trace_html(SPANS))

    colours: dict[str, set[str]] = {}
    for row in rows:
        colours.setdefault(row.attributes["data-service"], set()).add(row.bar("background"))
    assert all(len(used) == 1 for used in colours.values()), colours
    assert len({next(iter(used)) for used in colours.values()}) == 3
    assert {next(iter(used)) for used in colours.values()} <= set(SERVICE_COLOURS)


def test_a_failed_span_is_marked_with_its_message_and_the_others_are_not() -> None:
    rows = rows_of(render_trace_html(SPANS))

    failed = [row for row in rows if "failed" in row.css_classes]
    assert [row.attributes["data-span-id"] for row in failed] == ["0000000000000003"]
    assert failed[0].attributes["data-status"] == "ERROR"
    assert "ERROR: boom" in "".join(failed[0].text)


@pytest.mark.parametrize(
    ("where", "make"),
    [
        ("name", lambda text: span("0000000000000001", None, text, "svc", 0, 1)),
        ("service", lambda text: span("0000000000000001", None, "n", text, 0, 1)),
        (
            "attribute",
            lambda text: span("0000000000000001", None, "n", "s", 0, 1, attributes={text: text}),
        ),
    ],
)
def test_text_from_spans_is_escaped_wherever_it_goes(where: str, make: object) -> None:
    hostile = '<script>alert("x")</script>&\'"'
    page = render_trace_html([make(hostile)], title=hostile)  # type: ignore[operator]

    assert "<script" not in page, where
    rows = rows_of(page)
    assert len(rows) == 1
    # the text survives, as text: in the row (name, service, attributes) or its hover
    seen = "".join(rows[0].text) + rows[0].attributes["title"] + rows[0].attributes["data-service"]
    assert hostile in seen, where


def test_log_lines_go_under_the_span_they_carry_and_other_traces_are_left_out() -> None:
    def record(span_id: str | None, message: str, trace_id: str = TRACE) -> LogRecord:
        return LogRecord(T0 + 25 * MS, "user", "ERROR", message, trace_id, span_id)

    page = render_trace_html(
        SPANS,
        logs=[
            record("0000000000000003", "user <u-1> not found"),
            record(None, "no span id"),
            record("0000000000000003", "another trace", trace_id="cd" * 16),
        ],
    )

    rows = {row.attributes["data-span-id"][-1]: row for row in rows_of(page)}
    assert "+25.0 ms [user] ERROR user <u-1> not found" in "".join(rows["3"].text)
    assert "1 log line" in "".join(rows["3"].text)
    assert "log line" not in "".join(rows["2"].text)
    assert "no span id" in page.split("without a span of it")[1]
    assert "another trace" not in page


def test_several_traces_get_a_section_each_and_orphans_are_roots_marked() -> None:
    other = "cd" * 16
    page = render_trace_html(
        [*SPANS, span("00000000000000aa", "00000000000000ff", "lost", "user", 5, 6, trace_id=other)]
    )

    assert re.findall(r'data-trace-id="([0-9a-f]+)"', page) == [TRACE, other]
    lost = rows_of(page)[-1]
    assert lost.attributes["data-depth"] == "0"
    assert "(parent 00000000000000ff not in trace)" in "".join(lost.text)


def test_no_spans_is_a_page_that_says_so() -> None:
    assert "<p>No spans.</p>" in render_trace_html([])


INNER_INI = """
[pytest]
addopts = --strict-markers --strict-config
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
filterwarnings = error
"""

# One test fails inside its own client span (marked ERROR), one fails without spans, one
# passes with spans: only the first gets a page.
INNER_TESTS = """
def test_fails_with_a_trace(traces):
    with traces.client_span("call <the> service"):
        assert 1 + 1 == 3


def test_fails_without_spans(traces):
    assert False


def test_passes_with_a_trace(traces):
    with traces.client_span("fine"):
        pass
"""


def test_a_test_failing_with_a_trace_gets_its_page_in_the_directory_and_report(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INNER_INI)
    pytester.makepyfile(test_inner=INNER_TESTS)

    result = pytester.runpytest_subprocess(
        "--harness-backend=process", "--harness-trace-html=pages/traces", timeout=120
    )

    result.assert_outcomes(passed=1, failed=2)
    pages = sorted((pytester.path / "pages" / "traces").iterdir())
    assert [page.name for page in pages] == ["test_inner.py_test_fails_with_a_trace.html"]
    result.stdout.fnmatch_lines(["*trace page of this test*", str(pages[0])])
    rows = rows_of(pages[0].read_text(encoding="utf-8"))
    assert [(row.attributes["data-service"], row.attributes["data-status"]) for row in rows] == [
        ("test", "ERROR")
    ]
    assert "call <the> service" in "".join(rows[0].text)


def test_a_trace_html_path_that_is_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INNER_INI)
    pytester.makefile(".txt", pages="not a directory")

    result = pytester.runpytest_subprocess("--harness-trace-html=pages.txt", timeout=120)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--harness-trace-html / harness_trace_html: 'pages.txt' is not a directory*"]
    )


# Measures the page as Chromium laid it out and writes the figures into the DOM, which
# --dump-dom then prints: what the page shows, not what its HTML says.
MEASURE_SCRIPT = """<script>
const rows = [...document.querySelectorAll("div.span")].map((row) => {
  const lane = row.querySelector(".lane").getBoundingClientRect();
  const bar = row.querySelector(".bar");
  const box = bar.getBoundingClientRect();
  return {
    id: row.dataset.spanId,
    service: row.dataset.service,
    top: row.getBoundingClientRect().top,
    indent: parseFloat(getComputedStyle(row.querySelector(".label")).paddingLeft),
    left: (box.left - lane.left) / lane.width,
    width: box.width / lane.width,
    height: box.height,
    colour: getComputedStyle(bar).backgroundColor,
    outline: getComputedStyle(bar).outlineStyle,
    label: getComputedStyle(row.querySelector("summary")).color,
  };
});
const out = document.createElement("pre");
out.id = "measured";
out.textContent = JSON.stringify(rows);
document.body.appendChild(out);
</script>"""


def chromium_dump(page: Path) -> str:
    completed = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",  # as root in CI containers; the page is our own
            "--disable-gpu",
            "--window-size=1200,800",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    return completed.stdout


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="needs Chromium to render the page: apt-get install chromium (Debian's package)",
)
def test_chromium_renders_the_waterfall_nested_to_scale_coloured_with_the_failure_marked(
    tmp_path: Path,
) -> None:
    page = tmp_path / "trace.html"
    html = render_trace_html(SPANS, title="a failed test")
    page.write_text(html.replace("</body>", MEASURE_SCRIPT + "</body>"), encoding="utf-8")

    dom = chromium_dump(page)

    measured = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.DOTALL)
    assert measured, dom[-2000:]
    rows = {row["id"][-1]: row for row in json.loads(unescape(measured[1]))}
    assert sorted(rows) == ["1", "2", "3", "4"]
    # drawn top to bottom in tree order, each child indented further than its parent
    assert rows["1"]["top"] < rows["2"]["top"] < rows["3"]["top"] < rows["4"]["top"]
    assert rows["1"]["indent"] < rows["2"]["indent"] < rows["3"]["indent"]
    assert rows["3"]["indent"] == rows["4"]["indent"]
    # bars where the spans were in time, as fractions of the lane (see SPANS)
    for span_id, (left, width) in {"1": (0, 1), "2": (0.1, 0.8), "3": (0.2, 0.2)}.items():
        assert rows[span_id]["left"] == pytest.approx(left, abs=0.01)
        assert rows[span_id]["width"] == pytest.approx(width, abs=0.01)
        assert rows[span_id]["height"] > 0
    # one colour per service: both gateway spans alike, the three services apart
    assert rows["2"]["colour"] == rows["4"]["colour"]
    assert len({rows[span_id]["colour"] for span_id in "123"}) == 3
    # the failed span, and only it, is outlined and its name red
    assert [span_id for span_id, row in sorted(rows.items()) if row["outline"] != "none"] == ["3"]
    assert rows["3"]["label"] == "rgb(176, 0, 32)"
    assert rows["2"]["label"] != rows["3"]["label"]
