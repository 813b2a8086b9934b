"""Several replicas of a service starting together against one fresh database: what a
Deployment with `replicas: 2` (or a rollout, or an autoscaler) does in Kubernetes.

Each replica migrates at start under an advisory lock (servicekit.migrations). The test
holds that lock while the replicas start, so that every one of them is waiting for it
at once, then lets go: all must come up and serve, and the migrations must run once
(one replica logs them, the others find them applied). The wait for the lock may be
longer than a statement's deadline (DB_COMMAND_TIMEOUT_SECONDS): a migration that takes
a while must not make the replicas that wait for it fail.

Real processes (`python -m <service>`), the session's Postgres: no Docker needed.

The last test does the same through the harness, on the session's backend (processes or
containers): a stack asks for ``replicas={"dummy": 2}``, the harness launches both side
by side against a database nobody migrated, and they meet at the lock.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from harness import BackendSession, LogRecords, ServiceSpec, Stack, StackRequest, Workspace
from servicekit.migrations import ADVISORY_LOCK_KEY, load_migrations

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
REPLICAS = 3
START_TIMEOUT = 90.0  # seconds: three Python processes on a busy 2-core machine
# Settings a service needs beyond its database, not used before it serves.
EXTRA_SETTINGS = {"dummy": {"DUMMY_USER_ADDRESS": "127.0.0.1:9"}}


@dataclass
class Replica:
    """One service process; its output lines, read as they come."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    serving: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if '"serving"' in line:
                self.serving.set()

    def messages(self) -> list[str]:
        found = []
        for line in self.lines:
            try:
                found.append(str(json.loads(line).get("message", "")))
            except ValueError:
                found.append(line)
        return found

    def tail(self) -> str:
        return "\n".join(self.lines[-15:])


@asynccontextmanager
async def replicas(module: str, env: dict[str, str], count: int) -> AsyncIterator[list[Replica]]:
    """``count`` processes of ``python -m module``, stopped (SIGTERM, then SIGKILL) after."""
    started: list[Replica] = []
    readers: list[asyncio.Task[None]] = []
    try:
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module,
                env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            replica = Replica(process)
            started.append(replica)
            readers.append(asyncio.create_task(replica.read()))
        yield started
    finally:
        for replica in started:
            if replica.process.returncode is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in started:
            try:
                await asyncio.wait_for(replica.process.wait(), 30)
            except TimeoutError:
                replica.process.kill()
                await replica.process.wait()
        await asyncio.gather(*readers, return_exceptions=True)


async def lock_waiters(connection: asyncpg.Connection) -> int:
    count = await connection.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return int(count)


def grpc_services() -> list[str]:
    return [member.name for member in Workspace.read(ROOT).services()]


@pytest.mark.parametrize("service", grpc_services())
async def test_replicas_starting_together_all_serve_and_migrate_once(
    service: str, fresh_database: str
) -> None:
    prefix = service.upper()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", prefix))}
    env |= {
        f"{prefix}_DATABASE_URL": fresh_database,
        f"{prefix}_GRPC_HOST": "127.0.0.1",
        f"{prefix}_GRPC_PORT": "0",
        # shorter than the lock is held below: waiting for the lock is not a statement
        f"{prefix}_DB_COMMAND_TIMEOUT_SECONDS": "1",
        **EXTRA_SETTINGS.get(service, {}),
    }
    migrations = load_migrations(files(service) / "migrations")
    holder = await asyncpg.connect(fresh_database)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        async with replicas(service, env, REPLICAS) as started:
            async with asyncio.timeout(START_TIMEOUT):
                while await lock_waiters(holder) < REPLICAS:
                    exited = [r for r in started if r.process.returncode is not None]
                    assert not exited, f"a replica exited before the lock:\n{exited[0].tail()}"
                    await asyncio.sleep(0.05)
            # every replica waits for the lock now; hold it past their statement deadline
            await asyncio.sleep(2)
            await holder.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
            for replica in started:
                done = await asyncio.wait(
                    [asyncio.create_task(replica.serving.wait()),
                     asyncio.create_task(replica.process.wait())],
                    timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED,
                )  # fmt: skip
                for pending in done[1]:
                    pending.cancel()
                assert replica.serving.is_set(), f"a replica did not serve:\n{replica.tail()}"
            applied_by = [
                [m for m in replica.messages() if m.startswith("applied migration")]
                for replica in started
            ]
        recorded = await holder.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")
    finally:
        await holder.close()
    expected = [f"applied migration {m.version:04d}_{m.name}" for m in migrations]
    assert sorted(applied_by, key=len) == [[]] * (REPLICAS - 1) + [expected]
    assert [(r["version"], r["name"]) for r in recorded] == [
        (m.version, m.name) for m in migrations
    ]


class LockHolder(threading.Thread):
    """Holds the migrations' advisory lock on ``dsn`` from a thread of its own (the boot
    blocks the test's thread) until ``waiters`` sessions wait for it, then ``hold``
    seconds more, then lets go."""

    def __init__(self, dsn: str, waiters: int, hold: float) -> None:
        super().__init__(name="lock-holder", daemon=True)
        self.dsn, self.waiters, self.hold = dsn, waiters, hold
        self.held = threading.Event()
        self.all_waited = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._hold())
        except BaseException as error:  # reported by the test
            self.failure = error
        finally:
            self.held.set()

    async def _hold(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
            self.held.set()
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if await lock_waiters(connection) >= self.waiters:
                    self.all_waited.set()
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(self.hold)
        finally:
            await connection.close()  # lets go of the lock


async def create_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def recorded_migrations(dsn: str) -> list[tuple[int, str]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")
    finally:
        await connection.close()
    return [(row["version"], row["name"]) for row in rows]


def test_replicas_the_harness_boots_together_migrate_once(
    harness_stack_backend: BackendSession, harness_services: list[ServiceSpec]
) -> None:
    backend = harness_stack_backend.backend
    postgres = backend.postgres
    name = f"fresh_{uuid4().hex}"
    asyncio.run(create_database(postgres.dsn(), name))
    specs = [
        replace(spec, database=name) if spec.name == "dummy" else spec for spec in harness_services
    ]
    request = StackRequest(("dummy",), mocks=("user",), replicas=(("dummy", 2),))
    # On docker, Postgres joining the stack's network cuts connections from here: the
    # network first, then the connection that holds the lock.
    network = backend.network()
    holder = LockHolder(postgres.dsn(name), waiters=2, hold=2.0)
    booted: Stack | None = None
    try:
        holder.start()
        holder.held.wait(30)
        assert holder.failure is None, f"could not take the lock: {holder.failure!r}"
        # shorter than the lock is held: waiting for the lock is not a statement
        extra_env = {"DUMMY_DB_COMMAND_TIMEOUT_SECONDS": "1"}
        booted = Stack.boot(backend, specs, request, extra_env=extra_env, network=network)
        holder.join(START_TIMEOUT)
        assert holder.failure is None, repr(holder.failure)
        assert holder.all_waited.is_set(), "the replicas never waited for the lock together"
        applied = {
            instance: [
                record.message
                for record in LogRecords.parse(handle.log_tail(200).splitlines())
                if record.message.startswith("applied migration")
            ]
            for instance, handle in booted.instances().items()
        }
        recorded = asyncio.run(recorded_migrations(postgres.dsn(name)))
    finally:
        if booted is not None:
            booted.close()
        asyncio.run(drop_database(postgres.dsn(), name))
    migrations = load_migrations(files("dummy") / "migrations")
    expected = [f"applied migration {m.version:04d}_{m.name}" for m in migrations]
    assert sorted(applied) == ["dummy-0", "dummy-1"]
    assert sorted(applied.values(), key=len) == [[], expected], applied
    assert recorded == [(m.version, m.name) for m in migrations]
