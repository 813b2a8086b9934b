"""scripts/bench_gateway.py: its parsing and arithmetic on tables of inputs, and its wrk
script against a small local HTTP server (no figure is asserted on timing)."""

from __future__ import annotations

import http.server
import json
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_gateway import (  # noqa: E402
    TARGETS,
    BenchError,
    CpuSample,
    Point,
    ProcStat,
    WrkResult,
    add_ratios,
    cpu_ms_per_request,
    fmt_errors,
    fmt_number,
    fmt_with_ratio,
    make_point,
    parse_args,
    parse_proc_stat,
    parse_wrk_output,
    read_proc_stats,
    render_markdown,
    run_wrk,
    tree_ticks,
    wrk_command,
)

WRK_HEADER = """Running 2s test @ http://127.0.0.1:8080/user/me
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    23.12ms    6.01ms  43.80ms   71.23%
    Req/Sec   172.50     20.12   210.00     70.00%
  688 requests in 2.00s, 250.12KB read
Requests/sec:    343.91
Transfer/sec:    125.03KB
"""


def result_line(**overrides: object) -> str:
    data: dict[str, object] = {
        "requests": 688,
        "duration_us": 2000500,
        "bytes": 256123,
        "latency_us": {"p50": 23200, "p90": 31900, "p99": 43800, "mean": 23120.5, "max": 43800},
        "errors": {"non_2xx": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0},
    }
    data.update(overrides)
    return "BENCH_RESULT " + json.dumps(data)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param(
            WRK_HEADER + result_line() + "\n",
            WrkResult(688, 2.0005, 23.2, 31.9, 43.8, 23.1205, 43.8, 0, 0),
            id="after-wrk-summary",
        ),
        pytest.param(
            result_line(
                requests=10,
                errors={"non_2xx": 3, "connect": 1, "read": 2, "write": 0, "timeout": 4},
            ),
            WrkResult(10, 2.0005, 23.2, 31.9, 43.8, 23.1205, 43.8, 3, 7),
            id="non-2xx-and-socket-errors",
        ),
        pytest.param(
            result_line(requests=0, latency_us={"p50": 0, "p90": 0, "p99": 0, "mean": 0, "max": 0}),
            WrkResult(0, 2.0005, 0, 0, 0, 0, 0, 0, 0),
            id="no-request-served",
        ),
    ],
)
def test_parse_wrk_output(output: str, expected: WrkResult) -> None:
    assert parse_wrk_output(output) == expected


@pytest.mark.parametrize(
    ("output", "message"),
    [
        pytest.param(WRK_HEADER, "found 0", id="no-result-line"),
        pytest.param(
            "unable to connect to 127.0.0.1:1 Connection refused\n", "found 0", id="wrk-failed"
        ),
        pytest.param(result_line() + "\n" + result_line(), "found 2", id="two-result-lines"),
        pytest.param("BENCH_RESULT {not json", "JSONDecodeError", id="not-json"),
        pytest.param("BENCH_RESULT " + json.dumps({"requests": 1}), "KeyError", id="missing-key"),
    ],
)
def test_parse_wrk_output_refuses(output: str, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        parse_wrk_output(output)


@pytest.mark.parametrize(
    ("requests", "seconds", "non_2xx", "sockets", "req_per_s", "errors"),
    [
        pytest.param(1000, 2.0, 0, 0, 500.0, 0, id="clean"),
        pytest.param(10, 0.0, 1, 2, 0.0, 3, id="zero-duration"),
    ],
)
def test_wrk_result_arithmetic(
    requests: int, seconds: float, non_2xx: int, sockets: int, req_per_s: float, errors: int
) -> None:
    result = WrkResult(requests, seconds, 1, 2, 3, 1.5, 4, non_2xx, sockets)
    assert (result.req_per_s, result.errors) == (req_per_s, errors)


def stat_line(
    pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int, cstime: int
) -> str:
    # proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    # cmajflt utime stime cutime cstime priority nice ...
    return (
        f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 1234 0 0 0 "
        f"{utime} {stime} {cutime} {cstime} 20 0 1 0 12345 123456789 2345 "
        "18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 1 0 0 0 0 0\n"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            stat_line(42, "python", 1, 100, 20, 3, 4), ProcStat(42, 1, 127, 120), id="plain"
        ),
        pytest.param(
            stat_line(7, "postgres: bench (idle) ", 6, 5, 5, 0, 0),
            ProcStat(7, 6, 10, 10),
            id="name-with-spaces-and-parentheses",
        ),
        pytest.param(
            stat_line(9, ") S 1 2 3", 8, 1, 2, 0, 0), ProcStat(9, 8, 3, 3), id="name-like-fields"
        ),
    ],
)
def test_parse_proc_stat(line: str, expected: ProcStat) -> None:
    assert parse_proc_stat(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("", id="empty"),
        pytest.param("42 python S 1 2", id="no-parentheses"),
        pytest.param("42 (python) S 1 2 3", id="too-few-fields"),
        pytest.param("x (python) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", id="pid-not-a-number"),
    ],
)
def test_parse_proc_stat_refuses(line: str) -> None:
    with pytest.raises(ValueError, match=r"stat|invalid literal"):
        parse_proc_stat(line)


# A tree: 10 -> 11 -> 12, 10 -> 13; 20 apart.
STATS = {
    stat.pid: stat
    for stat in (
        ProcStat(10, 1, 100, 90),
        ProcStat(11, 10, 20, 20),
        ProcStat(12, 11, 3, 3),
        ProcStat(13, 10, 7, 7),
        ProcStat(20, 1, 1000, 1000),
    )
}


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        pytest.param(10, 130, id="root-children-grandchildren"),
        pytest.param(11, 23, id="subtree"),
        pytest.param(13, 7, id="leaf"),
        pytest.param(20, 1000, id="unrelated-tree-apart"),
        pytest.param(99, 0, id="gone"),
    ],
)
def test_tree_ticks(root: int, expected: int) -> None:
    assert tree_ticks(root, STATS) == expected


def test_read_proc_stats_skips_what_is_not_a_readable_process(tmp_path: Path) -> None:
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "stat").write_text(stat_line(12, "gateway", 1, 5, 6, 0, 0))
    (tmp_path / "13").mkdir()  # ended while being read: no stat file
    (tmp_path / "14").mkdir()
    (tmp_path / "14" / "stat").write_text("garbage")
    (tmp_path / "self").mkdir()
    (tmp_path / "uptime").write_text("1.0 1.0\n")
    assert read_proc_stats(tmp_path) == {12: ProcStat(12, 1, 11, 11)}


@pytest.mark.parametrize(
    ("ticks", "requests", "hertz", "expected"),
    [
        pytest.param(100, 1000, 100, 1.0, id="one-ms-each"),
        pytest.param(3, 200, 100, 0.15, id="fraction"),
        pytest.param(0, 50, 100, 0.0, id="idle"),
        pytest.param(250, 1000, 250, 1.0, id="other-clock-rate"),
        pytest.param(10, 0, 100, None, id="no-request"),
    ],
)
def test_cpu_ms_per_request(ticks: int, requests: int, hertz: int, expected: float | None) -> None:
    assert cpu_ms_per_request(ticks, requests, hertz) == pytest.approx(expected)


TARGET = {target.name: target for target in TARGETS}
PROCESSES = ("gateway", "auth", "user", "dummy", "postgres", "floor-gateway", "floor-echo")


def point(name: str, concurrency: int, requests: int, p99_us: int, ticks: dict[str, int]) -> Point:
    """A point of ``requests`` in 10 s, each process tree having used ``ticks`` (100 Hz)."""
    result = WrkResult(requests, 10.0, 1.0, 2.0, p99_us / 1000, 1.2, 9.0, 0, 0)
    before = CpuSample(dict.fromkeys(PROCESSES, 1000), launcher_ticks=7, wrk_seconds=1.0)
    after = CpuSample(
        {n: 1000 + ticks.get(n, 0) for n in PROCESSES}, launcher_ticks=12, wrk_seconds=1.5
    )
    return make_point(TARGET[name], concurrency, result, before, after, 100)


def test_make_point_cpu_per_process_and_total_of_its_stack() -> None:
    made = point(
        "GET /user/me",
        8,
        1000,
        4000,
        {"gateway": 100, "auth": 60, "user": 40, "postgres": 20, "floor-echo": 7},
    )
    assert made.cpu_ms_per_request == pytest.approx(
        {
            "gateway": 1.0,
            "auth": 0.6,
            "user": 0.4,
            "dummy": 0.0,
            "postgres": 0.2,
            "floor-gateway": 0.0,
            "floor-echo": 0.07,  # measured, but not the endpoint's cost
            "total": 2.2,
        }
    )
    assert made.req_per_s == 100.0
    assert made.wrk_cpu_ms_per_request == pytest.approx(0.5)
    assert made.launcher_cpu_ms_per_request == pytest.approx(0.05)


def test_add_ratios_to_the_echo_floor_of_the_same_concurrency() -> None:
    floor = point(
        "floor echo", 8, 2000, 2000, {"floor-gateway": 100, "floor-echo": 80}
    )  # 0.5 + 0.4
    other_floor = point("floor echo", 64, 10, 1, {"floor-gateway": 1, "floor-echo": 1})
    bare = point("floor bare", 8, 5000, 500, {"floor-gateway": 50})
    me = point(
        "GET /user/me", 8, 1000, 4000, {"gateway": 100, "auth": 60, "user": 40, "postgres": 20}
    )
    create = point(
        "POST /entities", 8, 500, 8000, {"gateway": 100, "auth": 20, "user": 20, "dummy": 40}
    )
    add_ratios([bare, floor, other_floor, me, create])
    assert me.ratios == pytest.approx(
        {
            "req_per_s": 0.5,  # 100 vs 200 req/s
            "latency_p50": 1.0,
            "latency_p90": 1.0,
            "latency_p99": 2.0,
            "cpu_total": 2.2 / 0.9,
            "cpu_gateway": 2.0,
            "cpu_auth": 3.0,  # 0.6 ms vs one echo call, 0.2 ms
            "cpu_user": 2.0,
        }
    )
    assert create.ratios["cpu_dummy"] == pytest.approx(4.0)
    assert "cpu_dummy" not in me.ratios  # /user/me does not go through dummy
    assert floor.ratios == bare.ratios == {}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(None, "—", id="none"),
        pytest.param(0.123, "0.12", id="small"),
        pytest.param(12.345, "12.3", id="tens"),
        pytest.param(1949.6, "1,950", id="thousands"),
    ],
)
def test_fmt_number(value: float | None, text: str) -> None:
    assert fmt_number(value) == text


@pytest.mark.parametrize(
    ("value", "ratio", "text"),
    [
        pytest.param(2.2, 2.444, "2.20 (2.44x)", id="with-ratio"),
        pytest.param(2.2, None, "2.20", id="no-floor"),
        pytest.param(None, None, "—", id="nothing"),
    ],
)
def test_fmt_with_ratio(value: float | None, ratio: float | None, text: str) -> None:
    assert fmt_with_ratio(value, ratio) == text


@pytest.mark.parametrize(
    ("errors", "text"),
    [
        pytest.param({"non_2xx": 0, "socket": 0}, "0", id="none"),
        pytest.param({"non_2xx": 3, "socket": 0}, "3 non-2xx", id="answers"),
        pytest.param({"non_2xx": 3, "socket": 2}, "3 non-2xx, 2 socket", id="both"),
    ],
)
def test_fmt_errors(errors: dict[str, int], text: str) -> None:
    assert fmt_errors(errors) == text


def test_render_markdown_rows_ratios_and_reference() -> None:
    floor = point("floor echo", 64, 2000, 2000, {"floor-gateway": 100, "floor-echo": 80})
    me = point(
        "GET /user/me", 64, 1000, 4000, {"gateway": 100, "auth": 60, "user": 40, "postgres": 20}
    )
    add_ratios([floor, me])
    lines = render_markdown([floor, me]).splitlines()
    assert (
        "| 64 | 100 (0.50x) | 1.00 (1.00x) | 2.00 (1.00x) | 4.00 (2.00x) | 0 | 2.20 (2.44x) "
        in (next(line for line in lines if line.startswith("| 64 |")))
    )
    row = next(line for line in lines if line.startswith("| 64 |"))
    assert row.endswith(
        "| 1.00 (2.00x) | 0.60 (3.00x) | 0.40 (2.00x) | 0.00 | 0.20 "
        "| 1,949-2,138 req/s, p99 54-64 ms; CPU-ms/req 0.82-0.92 "
        "(gateway 0.22, auth 0.18, user 0.17, Postgres 0.30) |"
    )
    assert "| floor echo | 64 | 200 | 1.00 | 2.00 | 2.00 | 0 | 0.90 | 0.50 | 0.40 |" in lines
    assert "**POST /entities**" not in lines  # not measured: no empty table
    # each fake point: wrk 0.5 s and 5 launcher ticks (0.05 s) over its requests
    assert lines[-1] == (
        "Not in the figures above: wrk itself 0.25-0.50 CPU-ms/req, this launcher "
        "(relaying the processes' logs) 0.03-0.05."
    )


@pytest.mark.parametrize(
    ("concurrency", "threads", "expected"),
    [
        pytest.param(1, 2, "--threads=1", id="one-connection-one-thread"),
        pytest.param(64, 2, "--threads=2", id="threads-capped"),
        pytest.param(8, 16, "--threads=8", id="never-more-threads-than-connections"),
    ],
)
def test_wrk_command_threads(concurrency: int, threads: int, expected: str) -> None:
    command = wrk_command("wrk", "http://h/x", concurrency, 5, threads)
    assert expected in command
    assert f"--connections={concurrency}" in command
    assert "--duration=5s" in command


@pytest.mark.parametrize(
    ("argv", "concurrency", "duration"),
    [
        pytest.param([], [1, 8, 64], 20, id="defaults"),
        pytest.param(["--concurrency", "2,4", "--duration", "5"], [2, 4], 5, id="given"),
    ],
)
def test_parse_args(argv: list[str], concurrency: list[int], duration: int) -> None:
    args = parse_args(argv)
    assert (args.concurrency, args.duration) == (concurrency, duration)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--concurrency", "1,x"], id="not-a-number"),
        pytest.param(["--concurrency", "0"], id="zero-connections"),
        pytest.param(["--duration", "0"], id="zero-seconds"),
        pytest.param(["--warmup", "-1"], id="negative-warm-up"),
    ],
)
def test_parse_args_refuses(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """200 on /ok, 404 elsewhere; remembers the headers and body of the last request."""

    seen: ClassVar[dict[str, str]] = {}
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        RecordingHandler.seen = {
            "method": self.command,
            "cookie": self.headers.get("Cookie", ""),
            "csrf": self.headers.get("X-Requested-With", ""),
            "type": self.headers.get("Content-Type", ""),
            "body": self.rfile.read(length).decode(),
        }
        self.send_response(200 if self.path == "/ok" else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.parametrize(
    ("target_name", "path", "all_errors"),
    [
        pytest.param("GET /user/me", "/ok", False, id="get-2xx"),
        pytest.param("POST /entities", "/missing", True, id="post-404-counted-as-non-2xx"),
    ],
)
def test_wrk_script_sends_the_session_and_reports(
    local_server: str, target_name: str, path: str, all_errors: bool
) -> None:
    target = TARGET[target_name]
    wrk = shutil.which("wrk")
    assert wrk is not None
    command = wrk_command(wrk, local_server + path, 1, 1, 1)
    result = run_wrk(command, target, "session=abc", 1, "test")
    assert result.requests > 0
    assert result.non_2xx == (result.requests if all_errors else 0)
    seen = RecordingHandler.seen
    assert (seen["method"], seen["cookie"], seen["csrf"]) == (target.method, "session=abc", "bench")
    if target.body is not None:
        assert (seen["type"], seen["body"]) == ("application/json", target.body)
