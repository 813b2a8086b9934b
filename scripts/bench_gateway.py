"""Benchmark of the whole backend through the gateway, beside its floor, with wrk.

    uv run python scripts/bench_gateway.py                        # 20 s per point
    uv run python scripts/bench_gateway.py --duration 5 --concurrency 1,8 --json bench.json

Starts the backend as ``make dev`` does (scripts/dev.py's ``running_backend``: Postgres,
auth, user, dummy and the gateway as local processes, free ports) and the floor
(scripts/bench_floor.py: the gateway's own ``main`` with two bare routes, and a gRPC
echo service run by servicekit's runner). Logs in with the development login, then,
for each concurrency (default 1, 8, 64), runs wrk (its own process; scripts/bench_wrk.lua
sends the session cookie, the CSRF header and the POST body, and prints the result) on:

- ``floor bare``: ``GET /floor/bare``, the floor gateway's HTTP stack alone;
- ``floor echo``: ``GET /floor/echo``, the same plus two unary gRPC echo calls through
  servicekit's channel and server, one after the other (the shape of ``GET /user/me``);
- ``GET /user/me``: auth.ValidateSession, then user.GetUser (one SQL query each);
- ``POST /entities``: auth.ValidateSession, then dummy.CreateEntity -> user.GetUser, an INSERT.

Each point is a warm-up (``--warmup`` s, not counted), then ``--duration`` s measured:
req/s, latency p50/p90/p99, errors (non-2xx answers, socket errors), and the CPU time
of each process tree (the process and all its children: Postgres with its backends)
from /proc/<pid>/stat before and after, per request served. Every endpoint figure is
also given as a ratio to the ``floor echo`` point of the same concurrency (services: to
one echo call), which stays comparable when the machine is noisy.

Prints progress while running, then a Markdown table (the Rust reference of issue 9
beside it); ``--json PATH`` writes every figure. Everything started is stopped on exit,
on Ctrl-C and on SIGTERM; each wrk run is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from bench_floor import ECHO_ADDRESS_VARIABLE, ROLE_VARIABLE
from dev import Backend, running_backend, stop_process
from progress import Progress

from harness import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
LUA_SCRIPT = SCRIPTS / "bench_wrk.lua"
LOG_DIR = ROOT / ".dev" / "bench" / "logs"
FLOOR_DATABASE = "bench_floor"
CSRF_VALUE = "bench"
RESULT_PREFIX = "BENCH_RESULT "
WRK_SOCKET_TIMEOUT = "10s"
WRK_GRACE_SECONDS = 30.0  # beyond its duration, before a wrk run is killed as hung
BACKEND_PROCESSES = ("gateway", "auth", "user", "dummy", "postgres")
FLOOR_PROCESSES = ("floor-gateway", "floor-echo")
ECHO_CALLS_PER_FLOOR_REQUEST = 2

# Issue 9's yardstick: the Rust original of this backend, GET /user/me, same kind of
# machine (2 cores), same Postgres, same wrk, 20 s per point.
RUST_REFERENCE_SOURCE = "issue 9: the Rust original, GET /user/me, same machine, Postgres and wrk"
RUST_REFERENCE = {  # by concurrency
    1: "497-502 req/s",
    8: "1,454-1,467 req/s, p99 12 ms",
    64: "1,949-2,138 req/s, p99 54-64 ms; CPU-ms/req 0.82-0.92 "
    "(gateway 0.22, auth 0.18, user 0.17, Postgres 0.30)",
}


class BenchError(Exception):
    """The benchmark cannot go on; the message says why and what to do."""


# --- wrk output ------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int  # connect + read + write + timeout

    @property
    def req_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def parse_wrk_output(text: str) -> WrkResult:
    """The ``BENCH_RESULT`` line that scripts/bench_wrk.lua prints at the end of a run."""
    lines = [line for line in text.splitlines() if line.startswith(RESULT_PREFIX)]
    if len(lines) != 1:
        raise BenchError(
            f"expected one {RESULT_PREFIX.strip()} line from wrk (scripts/bench_wrk.lua), "
            f"found {len(lines)}; wrk said:\n{text.strip()[-2000:]}"
        )
    try:
        data = json.loads(lines[0].removeprefix(RESULT_PREFIX))
        latency = data["latency_us"]
        errors = data["errors"]
        return WrkResult(
            requests=int(data["requests"]),
            duration_s=int(data["duration_us"]) / 1e6,
            p50_ms=latency["p50"] / 1000,
            p90_ms=latency["p90"] / 1000,
            p99_ms=latency["p99"] / 1000,
            mean_ms=float(latency["mean"]) / 1000,
            max_ms=latency["max"] / 1000,
            non_2xx=int(errors["non_2xx"]),
            socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise BenchError(
            f"unreadable {RESULT_PREFIX.strip()} line from wrk ({type(error).__name__}: "
            f"{error}): {lines[0]}"
        ) from error


# --- /proc -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int  # utime + stime + cutime + cstime: its CPU and its reaped children's
    own_ticks: int  # utime + stime: its CPU alone


def parse_proc_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line (proc(5)). The command name, in parentheses, may hold
    spaces and parentheses itself: the fields are what follows the last ')'."""
    head, closing, tail = text.rpartition(")")
    if not closing or "(" not in head:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:120]!r}")
    pid = int(head.partition("(")[0])
    fields = tail.split()  # fields[0] is field 3 (state) of proc(5)
    if len(fields) < 15:
        raise ValueError(f"/proc/{pid}/stat has {len(fields) + 2} fields, expected >= 17")
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])  # fields 14-17
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        ticks=utime + stime + cutime + cstime,
        own_ticks=utime + stime,
    )


def read_proc_stats(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process's stat; those that end while being read are skipped."""
    stats: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = parse_proc_stat((entry / "stat").read_text())
        except (OSError, ValueError):
            continue
        stats[stat.pid] = stat
    return stats


def tree_ticks(root: int, stats: Mapping[int, ProcStat]) -> int:
    """CPU ticks of ``root`` and every descendant of it (0 when it is gone)."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    total = 0
    pending = [root] if root in stats else []
    while pending:
        pid = pending.pop()
        total += stats[pid].ticks
        pending.extend(children.get(pid, ()))
    return total


def cpu_ms_per_request(ticks: int, requests: int, ticks_per_second: int) -> float | None:
    """``ticks`` of CPU spread over ``requests``, in ms; None when none were served."""
    if requests <= 0:
        return None
    return ticks * 1000 / ticks_per_second / requests


@dataclass(frozen=True)
class CpuSample:
    trees: dict[str, int]  # ticks of each named process tree
    launcher_ticks: int  # this process alone: the log relay of its children
    wrk_seconds: float  # CPU of reaped children: the wrk runs


def take_sample(pids: Mapping[str, int], proc: Path = Path("/proc")) -> CpuSample:
    stats = read_proc_stats(proc)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(
        trees={name: tree_ticks(pid, stats) for name, pid in pids.items()},
        # its own CPU only: its reaped children (the wrk runs) are counted apart
        launcher_ticks=stats[os.getpid()].own_ticks,
        wrk_seconds=children.ru_utime + children.ru_stime,
    )


# --- points ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str  # "GET /user/me", "floor echo"...
    kind: str  # "endpoint" or "floor"
    method: str
    path: str
    body: str | None
    processes: tuple[str, ...]  # the process trees whose CPU is its cost
    server: str  # "backend" or "floor": which gateway serves it
    services: tuple[str, ...] = ()  # the gRPC services a request goes through


TARGETS = (
    Target("floor bare", "floor", "GET", "/floor/bare", None, ("floor-gateway",), "floor"),
    Target("floor echo", "floor", "GET", "/floor/echo", None, FLOOR_PROCESSES, "floor"),
    Target(
        "GET /user/me",
        "endpoint",
        "GET",
        "/user/me",
        None,
        BACKEND_PROCESSES,
        "backend",
        ("auth", "user"),
    ),
    Target(
        "POST /entities",
        "endpoint",
        "POST",
        "/entities",
        json.dumps({"name": "bench entity", "description": "made by scripts/bench_gateway.py"}),
        BACKEND_PROCESSES,
        "backend",
        ("auth", "dummy", "user"),
    ),
)
SERVICES_OF = {target.name: target.services for target in TARGETS}
FLOOR_OF_ENDPOINTS = "floor echo"


@dataclass
class Point:
    target: str
    kind: str
    concurrency: int
    requests: int
    seconds: float
    req_per_s: float
    latency_ms: dict[str, float]  # p50, p90, p99, mean, max
    errors: dict[str, int]  # non_2xx, socket
    # per process tree, in ms per request; "total" is the sum over the target's processes
    cpu_ms_per_request: dict[str, float | None]
    wrk_cpu_ms_per_request: float | None
    launcher_cpu_ms_per_request: float | None
    ratios: dict[str, float | None] = field(default_factory=dict)


def make_point(
    target: Target,
    concurrency: int,
    result: WrkResult,
    before: CpuSample,
    after: CpuSample,
    ticks_per_second: int,
) -> Point:
    per_process = {
        name: cpu_ms_per_request(
            after.trees[name] - before.trees[name], result.requests, ticks_per_second
        )
        for name in before.trees
    }
    total_ticks = sum(after.trees[n] - before.trees[n] for n in target.processes)
    wrk_ms = (after.wrk_seconds - before.wrk_seconds) * 1000
    return Point(
        target=target.name,
        kind=target.kind,
        concurrency=concurrency,
        requests=result.requests,
        seconds=result.duration_s,
        req_per_s=result.req_per_s,
        latency_ms={
            "p50": result.p50_ms,
            "p90": result.p90_ms,
            "p99": result.p99_ms,
            "mean": result.mean_ms,
            "max": result.max_ms,
        },
        errors={"non_2xx": result.non_2xx, "socket": result.socket_errors},
        cpu_ms_per_request={
            **per_process,
            "total": cpu_ms_per_request(total_ticks, result.requests, ticks_per_second),
        },
        wrk_cpu_ms_per_request=wrk_ms / result.requests if result.requests else None,
        launcher_cpu_ms_per_request=cpu_ms_per_request(
            after.launcher_ticks - before.launcher_ticks, result.requests, ticks_per_second
        ),
    )


def _ratio(value: float | None, floor: float | None) -> float | None:
    if value is None or floor is None or floor <= 0:
        return None
    return value / floor


def add_ratios(points: Iterable[Point]) -> None:
    """Each endpoint point against the ``floor echo`` point of its concurrency: req/s,
    latencies, total CPU and the gateway's CPU to the floor's; each service's CPU to
    one echo call (the floor's echo server answers two per request)."""
    points = list(points)
    floors = {p.concurrency: p for p in points if p.target == FLOOR_OF_ENDPOINTS}
    for point in points:
        floor = floors.get(point.concurrency)
        if point.kind != "endpoint" or floor is None:
            continue
        cpu = point.cpu_ms_per_request
        floor_cpu = floor.cpu_ms_per_request
        echo = floor_cpu.get("floor-echo")
        echo_call = echo / ECHO_CALLS_PER_FLOOR_REQUEST if echo is not None else None
        point.ratios = {
            "req_per_s": _ratio(point.req_per_s, floor.req_per_s),
            **{
                f"latency_{k}": _ratio(point.latency_ms[k], floor.latency_ms[k])
                for k in ("p50", "p90", "p99")
            },
            "cpu_total": _ratio(cpu.get("total"), floor_cpu.get("total")),
            "cpu_gateway": _ratio(cpu.get("gateway"), floor_cpu.get("floor-gateway")),
            **{f"cpu_{s}": _ratio(cpu.get(s), echo_call) for s in SERVICES_OF[point.target]},
        }


# --- the Markdown table ----------------------------------------------------------


def fmt_number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def fmt_with_ratio(value: float | None, ratio: float | None) -> str:
    text = fmt_number(value)
    return text if ratio is None else f"{text} ({ratio:.2f}x)"


def fmt_errors(errors: Mapping[str, int]) -> str:
    if not any(errors.values()):
        return "0"
    return ", ".join(f"{count} {kind.replace('_', '-')}" for kind, count in errors.items() if count)


def render_endpoint_table(target: str, points: Sequence[Point]) -> list[str]:
    reference = target == "GET /user/me"
    header = ["c", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "CPU-ms/req"]
    header += ["gateway", "auth", "user", "dummy", "Postgres"]
    if reference:
        header.append("Rust original (issue 9)")
    lines = [f"**{target}**", "", _row(header), _row(["---"] * len(header))]
    for p in points:
        r = p.ratios
        cpu = p.cpu_ms_per_request
        cells = [
            str(p.concurrency),
            fmt_with_ratio(p.req_per_s, r.get("req_per_s")),
            *(
                fmt_with_ratio(p.latency_ms[k], r.get(f"latency_{k}"))
                for k in ("p50", "p90", "p99")
            ),
            fmt_errors(p.errors),
            fmt_with_ratio(cpu.get("total"), r.get("cpu_total")),
            *(fmt_with_ratio(cpu.get(s), r.get(f"cpu_{s}")) for s in ("gateway", "auth", "user")),
            fmt_with_ratio(cpu.get("dummy"), r.get("cpu_dummy")),
            fmt_number(cpu.get("postgres")),
        ]
        if reference:
            cells.append(RUST_REFERENCE.get(p.concurrency, "—"))
        lines.append(_row(cells))
    return lines


def render_floor_table(points: Sequence[Point]) -> list[str]:
    header = ["floor", "c", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "CPU-ms/req"]
    header += ["gateway", "echo server"]
    lines = ["**floor**", "", _row(header), _row(["---"] * len(header))]
    for p in points:
        cpu = p.cpu_ms_per_request
        lines.append(
            _row(
                [
                    p.target,
                    str(p.concurrency),
                    fmt_number(p.req_per_s),
                    *(fmt_number(p.latency_ms[k]) for k in ("p50", "p90", "p99")),
                    fmt_errors(p.errors),
                    fmt_number(cpu.get("total")),
                    fmt_number(cpu.get("floor-gateway")),
                    fmt_number(cpu.get("floor-echo")) if p.target == "floor echo" else "—",
                ]
            )
        )
    return lines


def render_markdown(points: Sequence[Point]) -> str:
    lines: list[str] = []
    for target in [t.name for t in TARGETS if t.kind == "endpoint"]:
        chosen = [p for p in points if p.target == target]
        if chosen:
            lines += [*render_endpoint_table(target, chosen), ""]
    floors = [p for p in points if p.kind == "floor"]
    if floors:
        lines += [*render_floor_table(floors), ""]
    lines.append(
        "CPU-ms/req: CPU time (user + system) of each process tree per request served. "
        "(nx): ratio to the `floor echo` point of the same c (HTTP route + two gRPC echo "
        "calls); auth, user and dummy to one echo call."
    )
    lines.append(_load_generator_line(points))
    return "\n".join(lines)


def _load_generator_line(points: Sequence[Point]) -> str:
    """What the load generator and this launcher themselves cost, over all the points."""

    def span(values: Iterable[float | None]) -> str:
        known = [v for v in values if v is not None]
        if not known:
            return "—"
        return f"{min(known):.2f}-{max(known):.2f}"

    wrk = span(p.wrk_cpu_ms_per_request for p in points)
    launcher = span(p.launcher_cpu_ms_per_request for p in points)
    return (
        f"Not in the figures above: wrk itself {wrk} CPU-ms/req, this launcher "
        f"(relaying the processes' logs) {launcher}."
    )


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# --- running ---------------------------------------------------------------------


def say(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


def ensure_wrk() -> str:
    """The wrk binary; installed from the Debian package when missing and root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError(
            "wrk is not installed. Install it (Debian/Ubuntu: `sudo apt-get install wrk`) "
            "and run again."
        )
    say("wrk missing: apt-get install wrk (up to 5 min)")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=240"]  # wait for another apt's lock
    for command in ([*apt, "update", "-q"], [*apt, "install", "-y", "-q", "wrk"]):
        try:
            subprocess.run(command, check=True, env=environment, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise BenchError(
                f"could not install wrk ({error}); install it and run again"
            ) from error
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get installed wrk but it is not on PATH")
    return found


def wrk_command(wrk: str, url: str, concurrency: int, seconds: int, threads: int) -> list[str]:
    return [
        wrk,
        f"--threads={max(1, min(threads, concurrency))}",
        f"--connections={concurrency}",
        f"--duration={seconds}s",
        f"--timeout={WRK_SOCKET_TIMEOUT}",
        f"--script={LUA_SCRIPT}",
        url,
    ]


def run_wrk(
    command: Sequence[str], target: Target, cookie: str, seconds: int, label: str
) -> WrkResult:
    """One wrk run, bounded: killed ``WRK_GRACE_SECONDS`` after its duration. Says how
    far it got every 10 s."""
    environment = {
        **os.environ,
        "BENCH_METHOD": target.method,
        "BENCH_COOKIE": cookie,
        "BENCH_CSRF": CSRF_VALUE,
        **({"BENCH_BODY": target.body} if target.body is not None else {}),
    }
    started = time.monotonic()
    with subprocess.Popen(
        command,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        deadline = started + seconds + WRK_GRACE_SECONDS
        try:
            while True:
                try:
                    output, _ = process.communicate(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise BenchError(
                            f"wrk ({shlex.join(command)}) did not end within "
                            f"{seconds + WRK_GRACE_SECONDS:.0f} s"
                        ) from None
                    say(f"  {label}: {time.monotonic() - started:.0f} s of {seconds} s")
        except BaseException:
            # Ctrl-C, SIGTERM, a hung run: wrk must not outlive the run (Popen's exit
            # does not wait for it on KeyboardInterrupt).
            process.kill()
            process.communicate()
            raise
    if process.returncode != 0:
        raise BenchError(f"wrk exited with {process.returncode}: {output.strip()[-2000:]}")
    return parse_wrk_output(output)


def login(client: httpx.Client) -> str:
    """The Cookie header of a development-login session."""
    answer = client.post(
        "/auth/dev/login",
        json={"email": "bench@example.com"},
        headers={"X-Requested-With": CSRF_VALUE},
    )
    if answer.status_code != 200 or not answer.cookies:
        raise BenchError(
            f"the development login answered {answer.status_code}: {answer.text[:500]}"
        )
    return "; ".join(f"{name}={value}" for name, value in answer.cookies.items())


def check_targets(urls: Mapping[str, str], cookie: str) -> None:
    """One request to each target before any load: a benchmark of error answers
    would measure nothing."""
    headers = {"Cookie": cookie, "X-Requested-With": CSRF_VALUE}
    for target in TARGETS:
        url = urls[target.server] + target.path
        with httpx.Client(trust_env=False, timeout=10) as client:
            answer = client.request(
                target.method,
                url,
                headers={
                    **headers,
                    **({"Content-Type": "application/json"} if target.body else {}),
                },
                content=target.body,
            )
        if not answer.is_success:
            hint = (
                " (the floor routes are missing: scripts/bench_floor.py wraps "
                "gateway.app.create_app before the gateway's main imports it; did the "
                "gateway's entry point change?)"
                if target.server == "floor" and answer.status_code == 404
                else ""
            )
            raise BenchError(
                f"{target.name} answered {answer.status_code} before the benchmark{hint}: "
                f"{answer.text[:500]}"
            )


@contextlib.contextmanager
def running_floor(backend: Backend, progress: Progress) -> Iterator[dict[str, ServiceProcess]]:
    """The floor's echo service and gateway (scripts/bench_floor.py), stopped after."""
    python_path = os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")]))
    echo = ServiceProcess(
        name="floor-echo",
        module="bench_floor",
        env={
            ROLE_VARIABLE: "echo",
            "PYTHONPATH": python_path,
            "FLOOR_DATABASE_URL": backend.postgres.dsn(FLOOR_DATABASE),
            "FLOOR_GRPC_HOST": "127.0.0.1",
            "FLOOR_GRPC_PORT": "0",
        },
        log_path=LOG_DIR / "floor-echo.log",
    )
    with contextlib.ExitStack() as running:
        with progress.step("floor echo: starting, until healthy"):
            echo.start()
        running.callback(stop_process, progress, echo)
        say(f"floor echo     {echo.address}  (grpc, logs: {echo.log_path})")
        gateway = ServiceProcess(
            name="floor-gateway",
            module="bench_floor",
            env={
                ROLE_VARIABLE: "gateway",
                "PYTHONPATH": python_path,
                ECHO_ADDRESS_VARIABLE: echo.address,
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": "0",
                "GATEWAY_ENVIRONMENT": "local",  # as the backend's gateway (scripts/dev.py)
                # never called by the floor routes; the gateway needs them set
                **{f"GATEWAY_{n.upper()}_ADDRESS": echo.address for n in ("auth", "user", "dummy")},
            },
            log_path=LOG_DIR / "floor-gateway.log",
        )
        with progress.step("floor gateway: starting, until healthy"):
            gateway.start()
        running.callback(stop_process, progress, gateway)
        say(f"floor gateway  http://{gateway.address}  (logs: {gateway.log_path})")
        yield {"floor-echo": echo, "floor-gateway": gateway}


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM end the run through the clean-up of everything started (SIGINT
    too when the shell that started it ignored it, as a background job's is)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def parse_concurrency(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"concurrency values must be >= 1: {text!r}")
    return values


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--duration", type=positive_int, default=20, help="seconds measured per point"
    )
    parser.add_argument(
        "--warmup", type=non_negative_int, default=3, help="seconds before each point, not counted"
    )
    parser.add_argument(
        "--concurrency",
        type=parse_concurrency,
        default=[1, 8, 64],
        help="connections kept busy, comma-separated (default 1,8,64)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="wrk threads (at most one per connection; default: the number of CPUs)",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    return parser.parse_args(argv)


def measure(
    args: argparse.Namespace,
    wrk: str,
    urls: Mapping[str, str],
    cookie: str,
    pids: Mapping[str, int],
    progress: Callable[[str], None] = say,
) -> list[Point]:
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    points: list[Point] = []
    total = len(args.concurrency) * len(TARGETS)
    for concurrency in args.concurrency:
        for target in TARGETS:
            label = f"[{len(points) + 1}/{total}] {target.name} c={concurrency}"
            url = urls[target.server] + target.path
            if args.warmup:
                progress(f"{label}: warm-up {args.warmup} s")
                command = wrk_command(wrk, url, concurrency, args.warmup, args.threads)
                run_wrk(command, target, cookie, args.warmup, label)
            progress(f"{label}: measuring {args.duration} s")
            command = wrk_command(wrk, url, concurrency, args.duration, args.threads)
            before = take_sample(pids)
            result = run_wrk(command, target, cookie, args.duration, label)
            after = take_sample(pids)
            point = make_point(target, concurrency, result, before, after, ticks_per_second)
            points.append(point)
            progress(
                f"{label}: {point.req_per_s:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
                f"errors {fmt_errors(point.errors)}, "
                f"CPU {fmt_number(point.cpu_ms_per_request['total'])} ms/req"
            )
    add_ratios(points)
    return points


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    started = time.monotonic()
    try:
        wrk = ensure_wrk()
        say("starting the backend (scripts/dev.py: Postgres, auth, user, dummy, gateway)")
        with (
            Progress() as progress,
            running_backend("0", LOG_DIR, [FLOOR_DATABASE], progress) as backend,
            running_floor(backend, progress) as floor,
        ):
            processes = {**backend.processes, **floor}
            pids = {name: p.pid for name, p in processes.items() if p.pid is not None}
            pids["postgres"] = backend.postgres.pid
            urls = {
                "backend": backend.gateway_url,
                "floor": f"http://{floor['floor-gateway'].address}",
            }
            with httpx.Client(base_url=backend.gateway_url, trust_env=False, timeout=10) as client:
                cookie = login(client)
            check_targets(urls, cookie)
            load_before = os.getloadavg()
            per_point = args.warmup + args.duration
            say(
                f"{len(args.concurrency) * len(TARGETS)} points of {per_point} s "
                f"(~{len(args.concurrency) * len(TARGETS) * per_point / 60:.1f} min)"
            )
            points = measure(args, wrk, urls, cookie, pids)
            say("stopping everything")
    except BenchError as error:
        print(f"bench_gateway: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_gateway: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    report = {
        "command": shlex.join(["scripts/bench_gateway.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "wall_seconds": round(time.monotonic() - started, 1),
        "points": [asdict(p) for p in points],
        "rust_reference": {
            "source": RUST_REFERENCE_SOURCE,
            "by_concurrency": {str(c): text for c, text in RUST_REFERENCE.items()},
        },
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        say(f"figures written to {args.json}")
    print()
    print(render_markdown(points))
    print()
    print(
        f"{report['command']}; {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
