"""Templates, reset and clone on a real server, used without pytest's fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from harness import (
    CleanStrategy,
    DatabaseSetupError,
    DatabaseSpec,
    PostgresServer,
    databases_from_templates,
    find_postgres_binaries,
    run_postgres,
)
from harness._loop import BackgroundLoop
from harness.owner import process_alive

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE schema_migrations (version integer PRIMARY KEY);
INSERT INTO schema_migrations VALUES (1);
CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE SEQUENCE invoice_numbers START 1000;
"""
SEED = "INSERT INTO accounts (name) VALUES ('house');"


def migration(sql: str) -> DatabaseSpec:
    async def migrate(dsn: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    return DatabaseSpec("ledger", migrate)


async def query(dsn: str, sql: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with run_postgres(find_postgres_binaries(), label="test-databases") as running:
        yield running


@pytest.fixture(scope="module")
def loop() -> Iterator[BackgroundLoop]:
    with BackgroundLoop() as running:
        yield running


@pytest.mark.parametrize("strategy", list(CleanStrategy), ids=str)
def test_clean_restores_rows_and_sequences(
    server: PostgresServer, loop: BackgroundLoop, strategy: CleanStrategy
) -> None:
    with databases_from_templates(server, [migration(SCHEMA)], strategy) as databases:
        dsn = databases.clean()["ledger"]
        loop.run(query(dsn, "INSERT INTO accounts (name) VALUES ('a'), ('b')"))
        assert loop.run(query(dsn, "SELECT nextval('invoice_numbers')")) == 1000
        assert loop.run(query(dsn, "SELECT nextval('invoice_numbers')")) == 1001

        databases.clean()

        assert loop.run(query(dsn, "SELECT count(*) FROM accounts")) == 0
        assert loop.run(query(dsn, "SELECT count(*) FROM schema_migrations")) == 1
        assert loop.run(query(dsn, "SELECT nextval('invoice_numbers')")) == 1000
        assert loop.run(query(dsn, "INSERT INTO accounts (name) VALUES ('c') RETURNING id")) == 1


def test_reset_refuses_migrations_that_leave_rows(server: PostgresServer) -> None:
    seeded = migration(SCHEMA + SEED)

    with (
        pytest.raises(DatabaseSetupError, match=r"leave rows in public\.accounts.*clone"),
        databases_from_templates(server, [seeded], CleanStrategy.RESET),
    ):
        pass


def test_clone_keeps_the_rows_migrations_leave(
    server: PostgresServer, loop: BackgroundLoop
) -> None:
    seeded = migration(SCHEMA + SEED)

    with databases_from_templates(server, [seeded], CleanStrategy.CLONE) as databases:
        dsn = databases.clean()["ledger"]
        loop.run(query(dsn, "DELETE FROM accounts"))
        databases.clean()

        assert loop.run(query(dsn, "SELECT name FROM accounts")) == "house"


def test_a_failing_migration_names_the_database(server: PostgresServer) -> None:
    broken = migration("CREATE TABLE oops (")

    with (
        pytest.raises(DatabaseSetupError, match=r"migrating database 'ledger'.*SyntaxError"),
        databases_from_templates(server, [broken], CleanStrategy.RESET),
    ):
        pass


@pytest.mark.parametrize(
    "name",
    ["Ledger", "1st", "with-dash", "postgres", "template1", "ledger_template", "x" * 60],
)
def test_database_names_are_checked(name: str) -> None:
    async def migrate(dsn: str) -> None:
        pass

    with pytest.raises(ValueError, match="database name"):
        DatabaseSpec(name, migrate)


def test_the_server_runs_unprivileged_and_leaves_nothing_behind() -> None:
    with run_postgres(find_postgres_binaries()) as running:
        status = Path(f"/proc/{running.pid}/status").read_text()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        if os.geteuid() == 0:
            assert uid != "0", "postgres must not run as root"
        assert running.data_dir.is_dir()

    assert not running.directory.exists()
    assert not process_alive(running.pid)


def test_case_folding_goes_beyond_ascii(server: PostgresServer, loop: BackgroundLoop) -> None:
    # As under production's UTF-8 locales; the C locale would leave 'Ö' as it is.
    assert loop.run(query(server.dsn(), "SELECT lower('JÖRG@BÜCHER.DE')")) == "jörg@bücher.de"
