"""run_postgres(durable=..., data_dir=...): the settings it runs with, a cluster kept across
restarts and a crash, and the directories it refuses (scripts/dev.py --durable uses it)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from harness import (
    PostgresBinaries,
    PostgresServer,
    PostgresStartError,
    find_postgres_binaries,
    run_postgres,
)
from harness.owner import process_group_alive

pytestmark = pytest.mark.integration  # runs Postgres

DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")


@pytest.fixture(scope="module")
def binaries() -> PostgresBinaries:
    return find_postgres_binaries()


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A temporary directory the postgres account can enter (as root, postgres runs as
    nobody, and pytest's tmp_path is closed to others)."""
    directory = Path(tempfile.mkdtemp(prefix="harness-durable-test-"))
    directory.chmod(0o711)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def fetch(server: PostgresServer, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(server.dsn())
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


def settings_of(server: PostgresServer) -> dict[str, str]:
    return {name: asyncio.run(fetch(server, f"SHOW {name}"))[0][0] for name in DURABILITY}


@pytest.mark.parametrize(
    ("durable", "expected"), [(False, "off"), (True, "on")], ids=["throwaway", "durable"]
)
def test_durable_turns_fsync_synchronous_commit_and_full_page_writes_on(
    binaries: PostgresBinaries, durable: bool, expected: str
) -> None:
    with run_postgres(binaries, label="durability", durable=durable) as server:
        assert settings_of(server) == dict.fromkeys(DURABILITY, expected)


def test_a_cluster_in_a_data_dir_survives_a_stop_and_start(
    binaries: PostgresBinaries, reachable_tmp: Path
) -> None:
    data_dir = reachable_tmp / "kept" / "data"  # parents made too
    with run_postgres(binaries, label="kept", durable=True, data_dir=data_dir) as server:
        asyncio.run(fetch(server, "CREATE TABLE kept AS SELECT 'still here' AS note"))
        run_directory = server.directory
    assert not run_directory.exists()  # the socket and log went; the cluster stayed
    assert (data_dir / "PG_VERSION").read_text().strip() == str(binaries.major)

    with run_postgres(binaries, label="kept", durable=True, data_dir=data_dir) as server:
        assert [r["note"] for r in asyncio.run(fetch(server, "SELECT note FROM kept"))] == [
            "still here"
        ]
        assert settings_of(server) == dict.fromkeys(DURABILITY, "on")
    # each start sets the reloadable settings again; the kept file must not pile them up
    auto_conf = (data_dir / "postgresql.auto.conf").read_text().splitlines()
    assert [line for line in auto_conf if line.startswith("synchronous_commit")] == [
        "synchronous_commit = 'on'"
    ]


def test_a_durable_server_killed_mid_writes_keeps_every_acknowledged_one(
    binaries: PostgresBinaries, reachable_tmp: Path
) -> None:
    """The defect: the throwaway settings acknowledge commits that a crash then loses."""
    data_dir = reachable_tmp / "data"
    acknowledged: list[int] = []

    async def write_until_the_server_dies(server: PostgresServer) -> None:
        connection = await asyncpg.connect(server.dsn())
        await connection.execute("CREATE TABLE writes (n int PRIMARY KEY)")
        crash = threading.Timer(0.3, server.crash)  # SIGKILL to the postmaster and backends
        crash.start()
        try:
            for n in range(100_000):  # bounded: the crash comes after 0.3 s
                await connection.execute("INSERT INTO writes VALUES ($1)", n)
                acknowledged.append(n)
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
        ):
            pass  # the crash
        finally:
            crash.join()
            connection.terminate()

    with run_postgres(binaries, label="crash", durable=True, data_dir=data_dir) as server:
        asyncio.run(write_until_the_server_dies(server))
        crashed = server.pid
    assert acknowledged, "no write was acknowledged before the crash"
    # crash() returns once the backends are gone too: they hold the shared memory that a
    # server started right away on the same data would otherwise find "still in use"
    assert not process_group_alive(crashed)

    with run_postgres(binaries, label="crash", durable=True, data_dir=data_dir) as server:
        stored = {r["n"] for r in asyncio.run(fetch(server, "SELECT n FROM writes"))}
    lost = set(acknowledged) - stored
    print(f"{len(acknowledged)} writes acknowledged before the crash, {len(lost)} lost")
    assert not lost


def file_in(directory: Path) -> Path:
    path = directory / "notes.txt"
    path.write_text("mine")
    return path


def non_empty_directory(directory: Path) -> Path:
    (directory / "photos").mkdir()
    (directory / "photos" / "cat.jpg").write_text("meow")
    return directory / "photos"


def cluster_of_another_version(directory: Path) -> Path:
    cluster = directory / "old-cluster"
    cluster.mkdir()
    (cluster / "PG_VERSION").write_text("9\n")
    return cluster


def dangling_link(directory: Path) -> Path:
    link = directory / "link"
    link.symlink_to(directory / "gone")
    return link


REFUSED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a file": (file_in, "is not a directory"),
    "a directory of other files": (non_empty_directory, "holds no PostgreSQL cluster"),
    "a cluster of another major version": (
        cluster_of_another_version,
        "holds a PostgreSQL 9 cluster",
    ),
    "a dangling symbolic link": (dangling_link, "symbolic link to nothing"),
}


@pytest.mark.parametrize(("make", "problem"), REFUSED.values(), ids=REFUSED.keys())
def test_a_data_dir_that_is_not_a_cluster_or_empty_is_refused_untouched(
    binaries: PostgresBinaries, reachable_tmp: Path, make: Callable[[Path], Path], problem: str
) -> None:
    data_dir = make(reachable_tmp)
    before = sorted((p.relative_to(reachable_tmp), p.is_dir()) for p in reachable_tmp.rglob("*"))

    with (
        pytest.raises(PostgresStartError, match=problem) as refused,
        run_postgres(binaries, label="refused", data_dir=data_dir),
    ):
        pytest.fail("started on a directory it should refuse")

    assert str(data_dir) in str(refused.value)
    assert "Remedy" in str(refused.value)
    after = sorted((p.relative_to(reachable_tmp), p.is_dir()) for p in reachable_tmp.rglob("*"))
    assert after == before


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs postgres as another account")
def test_a_data_dir_the_postgres_account_cannot_reach_is_refused(
    binaries: PostgresBinaries, tmp_path: Path
) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)

    with (
        pytest.raises(PostgresStartError, match="cannot enter") as refused,
        run_postgres(binaries, label="closed", data_dir=closed / "data"),
    ):
        pytest.fail("started where postgres cannot reach")

    assert str(closed) in str(refused.value)
    assert not (closed / "data").exists()
