"""The README's first command: the whole backend locally, and a newcomer's curl session.

Runs ``scripts/dev.py --ports 0`` (free ports, so it never meets a developer's own
``make dev``), reads the gateway's URL from what it prints, logs in with the
development login, reads /user/me, creates, lists, updates and deletes an entity,
logs out, then stops it with Ctrl-C (SIGINT) and checks that it stopped cleanly. On the
way, the trace view it prints: the login's trace (by its X-Trace-Id) is listed and opens
as a waterfall of gateway, auth and user, and it reached the user's own collector too
(OTEL_EXPORTER_OTLP_ENDPOINT). Then the durable mode: what start-up says, data kept
across a restart, bad data directories.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fixtures.gateway import CSRF
from harness import TraceReceiver

pytestmark = pytest.mark.integration  # Postgres and four service processes

ROOT = Path(__file__).resolve().parent.parent


# Every stop is bounded (a service 15 s, Postgres 10 s before SIGKILL), but all of them in a
# row on a machine at load 8 can add up; beyond this, one of them hung.
STOP_SECONDS = 90


@contextlib.contextmanager
def dev_backend(
    *options: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """``scripts/dev.py --ports 0 <options>`` running: the gateway's URL and the lines
    printed up to "ready"; stopped with Ctrl-C, which must end it cleanly."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/dev.py"), "--ports", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert process.stdout is not None
    printed: list[str] = []
    url = None
    # start-up took 87 s on a 2-core machine at load 18; progress lines (a heartbeat every
    # 10 s) come meanwhile, so this bound is checked even when start-up is slow
    deadline = time.monotonic() + 240
    try:
        for line in process.stdout:  # a line per service when it is ready, and progress
            printed.append(line)
            match = re.match(r"gateway\s+(http://\S+)", line)
            if match:
                url = match[1]
            if line.startswith("ready") or time.monotonic() > deadline:
                break
        assert url is not None, "".join(printed)
        yield url, printed
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code: int | None = process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()  # its steps so far, below, say which stop hung
            process.wait()
            code = None
        rest = process.stdout.read()
        process.stdout.close()
        assert code is not None, (
            f"not stopped {STOP_SECONDS} s after Ctrl-C:\n" + "".join(printed) + rest
        )
        assert code == 0, "".join(printed) + rest
        assert "stopping: services first" in rest


@dataclass(frozen=True)
class DevBackend:
    gateway_url: str
    traces_url: str  # the trace view make dev printed
    collector: TraceReceiver  # the user's own (OTEL_EXPORTER_OTLP_ENDPOINT), receiving too


@pytest.fixture
def dev() -> Iterator[DevBackend]:
    with (
        TraceReceiver() as collector,
        dev_backend(env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}) as (url, printed),
    ):
        assert any(line.startswith("NOT DURABLE: fsync=off") for line in printed), printed
        traces = next((line for line in printed if line.startswith("traces ")), "")
        assert f"also forwarded to {collector.endpoint}" in traces, printed
        yield DevBackend(url, traces.split()[1], collector)


def listed_traces(http: httpx.Client, trace_id: str, services: str) -> str:
    """The trace view's list page once its row of ``trace_id`` names ``services`` (each
    service exports in batches every 100 ms: the spans come in over a moment)."""
    row = f'data-trace-id="{trace_id}"><td>'
    deadline = time.monotonic() + 15
    while True:
        page = http.get("/").text
        if re.search(f"{row}[^\n]*<td>{services}</td>", page) or time.monotonic() > deadline:
            return page
        time.sleep(0.2)


def test_a_newcomer_logs_in_and_uses_every_route(dev: DevBackend) -> None:
    with httpx.Client(base_url=dev.gateway_url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        assert http.get("/user/me").status_code == 401  # no session yet
        login = http.post("/auth/dev/login", json={"email": "ann@example.com"}, headers=CSRF)
        assert login.status_code in (200, 201), login.text
        check_the_trace_view_shows(dev, login.headers["x-trace-id"])
        me = http.get("/user/me").json()
        assert me["email"] == "ann@example.com"

        created = http.post("/entities", json={"name": "first"}, headers=CSRF)
        assert created.status_code == 201, created.text
        entity = created.json()
        assert entity["owner_id"] == me["id"]
        assert created.headers["location"].endswith(entity["id"])
        assert http.get(created.headers["location"]).json() == entity
        listed = http.get("/entities", params={"page_size": 10}).json()
        assert [e["id"] for e in listed["entities"]] == [entity["id"]]
        renamed = http.patch(f"/entities/{entity['id']}", json={"name": "second"}, headers=CSRF)
        assert renamed.json()["name"] == "second"
        assert http.delete(f"/entities/{entity['id']}", headers=CSRF).status_code == 204
        assert http.get(f"/entities/{entity['id']}").status_code == 404

        assert http.post("/logout", headers=CSRF).status_code in (200, 204)
        assert http.get("/user/me").status_code == 401
        assert "x-trace-id" in http.get("/healthz").headers


def check_the_trace_view_shows(dev: DevBackend, trace_id: str) -> None:
    with httpx.Client(base_url=dev.traces_url, timeout=10) as view:
        front = listed_traces(view, trace_id, "auth, gateway, user")
        row = re.search(f'data-trace-id="{trace_id}">(.*)</tr>', front)
        assert row, front[-3000:]
        assert f'<a href="/traces/{trace_id}">POST /auth/dev/login</a>' in row[1]
        assert '<td class="answer">200</td><td>auth, gateway, user</td>' in row[1]
        page = view.get(f"/traces/{trace_id}")
    assert page.status_code == 200
    services = re.findall(
        r'<div class="span[^"]*" data-span-id="[0-9a-f]+" data-service="(\w+)"', page.text
    )
    assert services[0] == "gateway"  # the root: the HTTP request
    assert set(services) == {"gateway", "auth", "user"}, services
    # the user's collector got the same spans (forwarded by make dev's receiver)
    deadline = time.monotonic() + 15
    while len(dev.collector.snapshot(trace_id)) < len(services) and time.monotonic() < deadline:
        time.sleep(0.1)
    forwarded = dev.collector.snapshot(trace_id)
    assert {span.service for span in forwarded.spans} == {"gateway", "auth", "user"}
    assert len(forwarded) >= len(services)


# ------------------------------------------------------------------------ durable mode


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A temporary directory the postgres account can enter (as root, postgres runs as
    nobody, and pytest's tmp_path is closed to others)."""
    directory = Path(tempfile.mkdtemp(prefix="dev-durable-test-"))
    directory.chmod(0o711)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_durable_data_survives_a_restart(reachable_tmp: Path) -> None:
    data_dir = reachable_tmp / "postgres"
    login = {"email": "ann@example.com"}
    with dev_backend("--data-dir", str(data_dir)) as (url, printed):
        durable = "durable: fsync=on, synchronous_commit=on, full_page_writes=on"
        assert any(line.startswith(f"{durable}; data kept in {data_dir}") for line in printed)
        with httpx.Client(base_url=url, timeout=10) as http:
            user = http.post("/auth/dev/login", json=login, headers=CSRF).json()
            created = http.post("/entities", json={"name": "kept"}, headers=CSRF).json()

    with (
        dev_backend("--durable", "--data-dir", str(data_dir)) as (url, _),
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        again = http.post("/auth/dev/login", json=login, headers=CSRF).json()
        assert again["id"] == user["id"]  # the same user, not a new one
        assert http.get("/entities").json()["entities"] == [created]


def a_file(directory: Path) -> Path:
    path = directory / "notes.txt"
    path.write_text("mine")
    return path


def a_directory_of_other_files(directory: Path) -> Path:
    (directory / "photos").mkdir()
    (directory / "photos" / "cat.jpg").write_text("meow")
    return directory / "photos"


BAD_DATA_DIRS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a file": (a_file, "is not a directory"),
    "a directory of other files": (a_directory_of_other_files, "holds no PostgreSQL cluster"),
}


@pytest.mark.parametrize(("make", "problem"), BAD_DATA_DIRS.values(), ids=BAD_DATA_DIRS.keys())
def test_a_bad_data_dir_is_a_clear_error_and_starts_nothing(
    reachable_tmp: Path, make: Callable[[Path], Path], problem: str
) -> None:
    data_dir = make(reachable_tmp)
    before = sorted(str(p) for p in reachable_tmp.rglob("*"))

    finished = subprocess.run(
        [sys.executable, str(ROOT / "scripts/dev.py"), "--ports", "0", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 2, finished.stdout + finished.stderr
    assert f"dev.py: error: data directory {data_dir}" in finished.stderr
    assert problem in finished.stderr
    assert "Remedy" in finished.stderr
    assert "gateway" not in finished.stdout  # nothing was started
    assert sorted(str(p) for p in reachable_tmp.rglob("*")) == before


# ------------------------------------------------------------------------ trace view


@pytest.mark.parametrize(
    ("options", "env", "problem"),
    [
        ((), {"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://jaeger:4317"}, "OTLP endpoint 'ftp://"),
        (("--traces-port", "{taken}"), {}, "the trace view could not listen on 127.0.0.1:"),
    ],
    ids=["a bad OTLP endpoint", "a taken port"],
)
def test_a_trace_view_that_cannot_start_is_a_clear_error_and_starts_nothing(
    options: tuple[str, ...], env: dict[str, str], problem: str
) -> None:
    with TraceReceiver() as taken:  # holds a port: the trace view cannot have it
        arguments = [option.format(taken=taken.port) for option in options]
        finished = subprocess.run(
            [sys.executable, str(ROOT / "scripts/dev.py"), "--ports", "0", *arguments],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, **env},
            timeout=60,
            check=False,
        )

    assert finished.returncode == 2, finished.stdout + finished.stderr
    assert finished.stderr.startswith("dev.py: error: "), finished.stderr
    assert problem in finished.stderr
    assert "Remedy: --traces-port <free port>" in finished.stderr
    assert "postgres" not in finished.stdout  # nothing was started
