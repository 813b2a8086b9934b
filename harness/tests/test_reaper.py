"""A run killed with SIGKILL leaves its server behind; the next run reaps it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.announcements import wait_for_announcement
from harness import find_postgres_binaries, reap_stale_servers, run_postgres
from harness.owner import process_alive, process_group_alive

# runs Postgres (and pytest runs of its own)
pytestmark = pytest.mark.integration

INI = """
[pytest]
addopts = --strict-markers --strict-config -p no:cacheprovider
asyncio_default_fixture_loop_scope = session
filterwarnings = error
"""

HOLD_SERVER = """
import json
import threading


def test_hold_the_server_until_killed(postgres_server):
    announcement = {"pid": postgres_server.pid, "directory": str(postgres_server.directory)}
    print("HARNESS-SERVER", json.dumps(announcement), flush=True)
    threading.Event().wait(120)
"""

USE_SERVER = """
def test_uses_a_server(postgres_server):
    assert postgres_server.port > 0
"""


def shared_memory_ids() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[1]) for line in lines}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /proc")
def test_the_next_run_reaps_a_killed_runs_server(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_hold=HOLD_SERVER, test_after=USE_SERVER)
    with pytester.popen(
        [sys.executable, "-m", "pytest", "-s", "test_hold.py"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as killed_run:
        try:
            announcement = wait_for_announcement(killed_run, "HARNESS-SERVER", timeout=60)
        finally:
            killed_run.kill()  # SIGKILL: no teardown runs, the server is orphaned
    pid, directory = int(str(announcement["pid"])), Path(str(announcement["directory"]))
    shm_id = int((directory / "data" / "postmaster.pid").read_text().splitlines()[6].split()[1])
    assert process_alive(pid), "the killed run's server should outlive it"
    assert shm_id in shared_memory_ids()

    result = pytester.runpytest("test_after.py")

    result.assert_outcomes(passed=1)
    assert not process_alive(pid), "the leftover server was not killed"
    assert not directory.exists(), "the leftover directory was not deleted"
    assert shm_id not in shared_memory_ids(), "the leftover shared memory was not removed"


def test_a_live_runs_server_is_not_reaped() -> None:
    with run_postgres(find_postgres_binaries()) as server:
        reaped = reap_stale_servers()

        assert server.directory not in reaped
        assert server.directory.exists()
        assert process_alive(server.pid)


def test_a_process_group_is_alive_while_a_member_runs_and_not_once_only_zombies_are_left() -> None:
    running = subprocess.Popen(["sleep", "30"], start_new_session=True)
    exited = subprocess.Popen(["true"], start_new_session=True)
    try:
        assert process_group_alive(running.pid)
        deadline = time.monotonic() + 10
        while not _is_zombie(exited.pid):  # not waited for (poll would reap it): a zombie
            assert time.monotonic() < deadline, "'true' did not exit within 10 s"
            time.sleep(0.01)
        assert not process_group_alive(exited.pid)
    finally:
        running.kill()
        running.wait()
        exited.wait()
    assert not process_group_alive(running.pid)


def _is_zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"
