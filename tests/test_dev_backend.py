"""The README's first command: the whole backend locally, and a newcomer's curl session.

Runs ``scripts/dev.py --ports 0`` (free ports, so it never meets a developer's own
``make dev``), reads the gateway's URL from what it prints, logs in with the
development login, reads /user/me, creates, lists, updates and deletes an entity,
logs out, then stops it with Ctrl-C (SIGINT) and checks that it stopped cleanly.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.gateway import CSRF

pytestmark = pytest.mark.integration  # Postgres and four service processes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gateway_url() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/dev.py"), "--ports", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    printed: list[str] = []
    url = None
    deadline = time.monotonic() + 60
    try:
        for line in process.stdout:  # the launcher prints one line per service when ready
            printed.append(line)
            match = re.match(r"gateway\s+(http://\S+)", line)
            if match:
                url = match[1]
            if line.startswith("ready") or time.monotonic() > deadline:
                break
        assert url is not None, "".join(printed)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        rest = process.stdout.read()
        process.stdout.close()
        assert code == 0, "".join(printed) + rest
        assert "stopping: services first" in rest


def test_a_newcomer_logs_in_and_uses_every_route(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        assert http.get("/user/me").status_code == 401  # no session yet
        login = http.post("/auth/dev/login", json={"email": "ann@example.com"}, headers=CSRF)
        assert login.status_code in (200, 201), login.text
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
