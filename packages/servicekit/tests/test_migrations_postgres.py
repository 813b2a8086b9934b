"""The migration runner on a real PostgreSQL server: order, history, failures, concurrency.

Each test gets a database of its own, created empty on the session's server and
dropped after, and writes its migration files into ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

import asyncpg
import pytest

from servicekit.migrations import (
    ADVISORY_LOCK_KEY,
    Migration,
    MigrationError,
    apply_migrations,
    load_migrations,
    migrate,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from harness import PostgresServer

pytestmark = pytest.mark.integration

FIRST = "CREATE TABLE widgets (id integer PRIMARY KEY);"
# each migration needs the one before it, so only the version order succeeds
SECOND = "ALTER TABLE widgets ADD COLUMN name text NOT NULL DEFAULT '';"
TENTH = "CREATE INDEX widgets_name ON widgets (name);"


@pytest.fixture
async def database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """The DSN of a new, empty database, dropped after the test."""
    name = f"migrations_{uuid4().hex}"
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_server.dsn(name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def write(folder: Path, name: str, sql: str) -> None:
    (folder / name).write_text(sql, encoding="utf-8")


def standard_folder(tmp_path: Path) -> Path:
    # written out of order: the runner sorts by version, not by name or creation
    write(tmp_path, "0010_index_names.sql", TENTH)
    write(tmp_path, "0002_add_name.sql", SECOND)
    write(tmp_path, "0001_create_widgets.sql", FIRST)
    return tmp_path


async def history(dsn: str) -> list[tuple[int, str, str]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        )
    finally:
        await connection.close()
    return [(row["version"], row["name"], row["checksum"]) for row in rows]


async def table_exists(dsn: str, table: str) -> bool:
    connection = await asyncpg.connect(dsn)
    try:
        return bool(await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table))
    finally:
        await connection.close()


def sha256(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


async def test_migrations_are_applied_in_version_order_and_recorded(
    database: str, tmp_path: Path
) -> None:
    applied = await migrate(database, standard_folder(tmp_path))
    assert [(m.version, m.name) for m in applied] == [
        (1, "create_widgets"),
        (2, "add_name"),
        (10, "index_names"),
    ]
    assert await history(database) == [
        (1, "create_widgets", sha256(FIRST)),
        (2, "add_name", sha256(SECOND)),
        (10, "index_names", sha256(TENTH)),
    ]
    assert await table_exists(database, "widgets_name")


async def test_a_second_run_applies_nothing(database: str, tmp_path: Path) -> None:
    folder = standard_folder(tmp_path)
    await migrate(database, folder)
    recorded = await history(database)
    assert await migrate(database, folder) == []
    assert await history(database) == recorded


async def test_a_new_file_is_applied_alone(database: str, tmp_path: Path) -> None:
    folder = standard_folder(tmp_path)
    await migrate(database, folder)
    # would fail if any earlier migration ran again (CREATE TABLE widgets exists)
    write(folder, "0011_gadgets.sql", "CREATE TABLE gadgets (id integer);")
    applied = await migrate(database, folder)
    assert [(m.version, m.name) for m in applied] == [(11, "gadgets")]
    assert [version for version, _, _ in await history(database)] == [1, 2, 10, 11]
    assert await table_exists(database, "gadgets")


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("CREATE TABLE gadgets (id integer);\nSELEC 1;", asyncpg.PostgresSyntaxError),
        (
            "CREATE TABLE gadgets (id integer);\nINSERT INTO gadgets VALUES (1);\n"
            "INSERT INTO no_such_table VALUES (1);",
            asyncpg.UndefinedTableError,
        ),
    ],
    ids=["syntax error", "error after a table was created"],
)
async def test_a_failing_migration_is_rolled_back_entirely(
    database: str, tmp_path: Path, broken: str, error: type[Exception]
) -> None:
    write(tmp_path, "0001_create_widgets.sql", FIRST)
    write(tmp_path, "0002_broken.sql", broken)
    write(tmp_path, "0003_after.sql", "CREATE TABLE after_broken (id integer);")
    with pytest.raises(error):
        await migrate(database, tmp_path)
    # the first one stays; nothing of the broken one, nor of any after it, remains
    assert await history(database) == [(1, "create_widgets", sha256(FIRST))]
    assert await table_exists(database, "widgets")
    assert not await table_exists(database, "gadgets")
    assert not await table_exists(database, "after_broken")

    # once repaired, it applies from where it stopped
    write(tmp_path, "0002_broken.sql", "CREATE TABLE gadgets (id integer);")
    applied = await migrate(database, tmp_path)
    assert [m.version for m in applied] == [2, 3]
    assert await table_exists(database, "gadgets")


async def test_a_failing_migration_releases_the_lock(database: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_broken.sql", "SELEC 1;")
    connection = await asyncpg.connect(database)
    other = await asyncpg.connect(database)
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await apply_migrations(connection, load_migrations(tmp_path))
        # the connection lives on (a pool would reuse it): it must not keep the lock
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY)
    finally:
        await other.close()
        await connection.close()


async def test_an_applied_migration_that_changed_stops_the_run(
    database: str, tmp_path: Path
) -> None:
    folder = standard_folder(tmp_path)
    await migrate(database, folder)
    recorded = await history(database)
    write(folder, "0002_add_name.sql", SECOND + "\n-- edited after it was applied\n")
    write(folder, "0011_gadgets.sql", "CREATE TABLE gadgets (id integer);")
    with pytest.raises(MigrationError, match=r"0002_add_name changed after it was applied"):
        await migrate(database, folder)
    # nothing is applied while the history and the files disagree
    assert await history(database) == recorded
    assert not await table_exists(database, "gadgets")


async def test_an_applied_migration_whose_file_is_gone_stops_the_run(
    database: str, tmp_path: Path
) -> None:
    folder = standard_folder(tmp_path)
    await migrate(database, folder)
    recorded = await history(database)
    (folder / "0002_add_name.sql").unlink()
    write(folder, "0011_gadgets.sql", "CREATE TABLE gadgets (id integer);")
    with pytest.raises(MigrationError, match=r"0002_add_name is applied .* file is missing"):
        await migrate(database, folder)
    assert await history(database) == recorded
    assert not await table_exists(database, "gadgets")


async def lock_waiters(connection: asyncpg.Connection) -> int:
    count = await connection.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return int(count)


async def test_concurrent_runs_apply_each_migration_once(database: str, tmp_path: Path) -> None:
    folder = standard_folder(tmp_path)
    holder = await asyncpg.connect(database)
    runs: list[asyncio.Task[list[Migration]]] = []
    try:
        # Hold the runners' lock so that both start, and both wait for it, before either
        # applies anything: then they race for real once it is released.
        await holder.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        runs = [asyncio.create_task(migrate(database, folder)) for _ in range(2)]
        async with asyncio.timeout(10):
            while await lock_waiters(holder) < 2:
                assert not any(run.done() for run in runs), "a run did not wait for the lock"
                await asyncio.sleep(0.01)
        await holder.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
        outcomes = await asyncio.gather(*runs)
    finally:
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        await holder.close()
    applied = sorted(m.version for outcome in outcomes for m in outcome)
    assert applied == [1, 2, 10]
    assert sorted(len(outcome) for outcome in outcomes) == [0, 3]
    assert [version for version, _, _ in await history(database)] == [1, 2, 10]
