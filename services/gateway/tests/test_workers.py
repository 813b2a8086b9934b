"""Several gateway workers on one socket (``gateway.workers``), run as an operator runs
them: ``GATEWAY_WORKERS=2 python -m gateway``. The drain on SIGTERM with workers is in
test_server.py (parametrized over the worker count)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from harness import ServiceProcess

from .test_server import start_gateway

pytestmark = pytest.mark.integration


def serving_line(process: ServiceProcess) -> dict[str, object]:
    for line in process.log_tail(200).splitlines():
        if '"serving"' in line:
            record: dict[str, object] = json.loads(line)
            return record
    raise AssertionError(f"no serving line:\n{process.log_tail()}")


def worker_pids(process: ServiceProcess) -> list[int]:
    pids = serving_line(process)["worker_pids"]
    assert isinstance(pids, list)
    return [int(pid) for pid in pids]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        return int(answer.status)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[ServiceProcess]:
    process = start_gateway(tmp_path / "gateway.log", workers=2)
    try:
        yield process
    finally:
        process.stop()


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().split(") ")[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_two_workers_share_the_socket_and_both_answer(two_workers: ServiceProcess) -> None:
    pids = worker_pids(two_workers)
    assert len(set(pids)) == 2
    assert two_workers.pid not in pids
    assert two_workers.port is not None
    before = {pid: cpu_ticks(pid) for pid in pids}
    # separate connections: the kernel hands each to whichever worker accepts first
    for _ in range(400):
        assert healthz(two_workers.port) == 200
    used = {pid: cpu_ticks(pid) - before[pid] for pid in pids}
    assert all(ticks > 0 for ticks in used.values()), f"a worker took no requests: {used}"


def test_a_worker_that_dies_is_replaced_and_the_gateway_keeps_serving(
    two_workers: ServiceProcess,
) -> None:
    victim, survivor = worker_pids(two_workers)
    os.kill(victim, signal.SIGKILL)
    assert two_workers.port is not None
    assert healthz(two_workers.port) == 200  # the other worker answers meanwhile
    replaced = wait_until(
        lambda: "a gateway worker exited: starting another" in two_workers.log_tail(), 10
    )
    assert replaced, two_workers.log_tail()
    assert alive(survivor)
    for _ in range(20):
        assert healthz(two_workers.port) == 200


def test_workers_end_with_their_supervisor_even_when_it_is_killed(
    two_workers: ServiceProcess,
) -> None:
    pids = worker_pids(two_workers)
    assert two_workers.pid is not None
    os.kill(two_workers.pid, signal.SIGKILL)
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 10), [
        pid for pid in pids if alive(pid)
    ]


@pytest.mark.parametrize(
    ("value", "count"), [(None, 1), ("1", 1), ("3", 3), ("auto", len(os.sched_getaffinity(0)))]
)
def test_the_worker_count(value: str | None, count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is None:
        monkeypatch.delenv("GATEWAY_WORKERS", raising=False)
    else:
        monkeypatch.setenv("GATEWAY_WORKERS", value)
    assert GatewaySettings().worker_count == count


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_a_worker_count_that_is_not_a_positive_number_or_auto_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_WORKERS", value)
    with pytest.raises(ValueError, match="workers"):
        GatewaySettings()


def test_a_worker_that_fails_before_it_serves_stops_the_gateway_with_exit_code_1() -> None:
    # a setting only a worker reads (its telemetry's), broken: every worker would fail
    env = {
        **os.environ,
        "GATEWAY_PORT": "0",
        "GATEWAY_WORKERS": "2",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_BSP_SCHEDULE_DELAY": "soon",
    }
    finished = subprocess.run(
        [sys.executable, "-m", "gateway"], env=env, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 1, finished.stderr
    assert "OTEL_BSP_SCHEDULE_DELAY" in finished.stderr  # the worker's own error
    assert "a gateway worker exited before it served" in finished.stderr + finished.stdout
    assert '"serving"' not in finished.stderr + finished.stdout
