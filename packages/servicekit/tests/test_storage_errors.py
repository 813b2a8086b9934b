"""What a lost or refused database does to a caller, on a real PostgreSQL server.

``storage_errors()`` must turn connection failures (nothing listening, a backend
killed mid-query) into StorageUnavailable, and let every other error (a constraint,
a bug in the SQL) through as it is. ``create_pool`` retries only connection failures,
and only until its ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import asyncpg
import pytest

from servicekit.errors import InvalidArgument, ServiceError, StorageUnavailable, WriteOutcomeUnknown
from servicekit.postgres import create_pool, storage_errors, storage_write

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from harness import PostgresServer

RETRY_LOG = "database not reachable yet"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def nowhere_dsn() -> str:
    """A DSN of a port on which nothing listens."""
    return f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"


@pytest.fixture
async def connection(postgres_server: PostgresServer) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres_server.dsn())
    yield connection
    await connection.close()


@pytest.fixture
def retry_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="servicekit.postgres"):
        yield caplog


def retries(log: pytest.LogCaptureFixture) -> int:
    return sum(RETRY_LOG in record.getMessage() for record in log.records)


async def until_running(connection: asyncpg.Connection, backend: int) -> None:
    """Wait until ``backend`` is executing a query (checked every 10 ms, 10 s at most)."""
    for _ in range(1000):
        state = await connection.fetchval(
            "SELECT state FROM pg_stat_activity WHERE pid = $1", backend
        )
        if state == "active":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {backend} never started its query (state {state!r})")


# ---------------------------------------------------------------- connection failures


@pytest.mark.integration
async def test_a_refused_connection_is_storage_unavailable(nowhere_dsn: str) -> None:
    # min_size=0: the pool connects on first use, as after a database restart
    pool = await asyncpg.create_pool(nowhere_dsn, min_size=0, max_size=1)
    try:
        with pytest.raises(StorageUnavailable) as raised:
            async with storage_errors():
                await pool.fetchval("SELECT 1")
    finally:
        await pool.close()
    assert isinstance(raised.value.__cause__, OSError)


@pytest.mark.integration
async def test_a_backend_killed_mid_query_is_storage_unavailable(
    postgres_server: PostgresServer, connection: asyncpg.Connection
) -> None:
    pool = await asyncpg.create_pool(postgres_server.dsn(), min_size=1, max_size=1)
    try:
        async with pool.acquire() as pooled:
            backend = pooled.get_server_pid()
        query = asyncio.create_task(pool.fetchval("SELECT pg_sleep(30)"))
        await until_running(connection, backend)
        assert await connection.fetchval("SELECT pg_terminate_backend($1)", backend)
        with pytest.raises(StorageUnavailable) as raised:
            async with storage_errors():
                await query
        # asyncpg reports the server's "terminating connection due to administrator
        # command" as one or the other, depending on when the socket closes
        cause = raised.value.__cause__
        assert isinstance(cause, asyncpg.PostgresConnectionError | asyncpg.AdminShutdownError)
        # the pool replaces the lost connection on its own
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


@pytest.mark.integration
async def test_a_closed_connection_is_storage_unavailable(connection: asyncpg.Connection) -> None:
    await connection.close()
    with pytest.raises(StorageUnavailable) as raised:
        async with storage_errors():
            await connection.fetchval("SELECT 1")
    assert isinstance(raised.value.__cause__, asyncpg.InterfaceError)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("connection reset by peer"),
        TimeoutError(),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.CrashShutdownError("terminating connection because of crash"),
    ],
    ids=["reset", "timeout", "too many clients", "starting up", "server crash"],
)
async def test_connection_failures_become_storage_unavailable(error: Exception) -> None:
    with pytest.raises(StorageUnavailable) as raised:
        async with storage_errors():
            raise error
    assert raised.value.__cause__ is error


# ---------------------------------------------------------------- values the database cannot take


@pytest.mark.parametrize(
    ("query", "argument", "reason"),
    [
        ("SELECT make_date($1, 1, 1)", 6_000_000, "date out of range"),
        ("SELECT $1::timestamptz", datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), "$1"),
        (
            "SELECT $1::timestamptz",
            datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
            "$1",
        ),
        ("SELECT $1::text", "nul \x00 inside", "0x00"),
        ("SELECT $1::int", 2**40, "$1"),
    ],
    ids=[
        "out of range in the server",
        "before year 1 in UTC",
        "after year 9999 in UTC",
        "NUL in text",
        "integer overflow",
    ],
)
@pytest.mark.integration
async def test_a_value_the_database_cannot_take_is_invalid_argument(
    connection: asyncpg.Connection, query: str, argument: object, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        async with storage_errors():
            await connection.fetchval(query, argument)
    assert raised.value.field == "request"
    assert reason in raised.value.message
    # the connection was fine all along
    assert await connection.fetchval("SELECT 1") == 1


# ---------------------------------------------------------------- other errors pass


@pytest.mark.integration
async def test_a_unique_violation_passes_unchanged(connection: asyncpg.Connection) -> None:
    await connection.execute("CREATE TEMP TABLE keys (id integer PRIMARY KEY)")
    await connection.execute("INSERT INTO keys VALUES (1)")
    with pytest.raises(asyncpg.UniqueViolationError):
        async with storage_errors():
            await connection.execute("INSERT INTO keys VALUES (1)")


@pytest.mark.integration
async def test_a_syntax_error_passes_unchanged(connection: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.PostgresSyntaxError):
        async with storage_errors():
            await connection.execute("SELEC 1")
    # the connection was fine all along
    assert await connection.fetchval("SELECT 1") == 1


@pytest.mark.parametrize(
    "error",
    [ValueError("a bug"), KeyError("column"), asyncpg.QueryCanceledError("statement timeout")],
    ids=["ValueError", "KeyError", "query cancelled"],
)
async def test_other_errors_pass_as_they_are(error: Exception) -> None:
    with pytest.raises(type(error)) as raised:
        async with storage_errors():
            raise error
    assert raised.value is error


# ---------------------------------------------------------------- storage_write


class FakePool:
    """A pool whose acquire or release fails as told, and that records releases."""

    def __init__(
        self, *, acquire_fails: Exception | None = None, release_fails: Exception | None = None
    ) -> None:
        self.acquire_fails = acquire_fails
        self.release_fails = release_fails
        self.connection = object()
        self.released: list[object] = []

    async def acquire(self) -> object:
        if self.acquire_fails is not None:
            raise self.acquire_fails
        return self.connection

    async def release(self, connection: object) -> None:
        self.released.append(connection)
        if self.release_fails is not None:
            raise self.release_fails


ADVICE = "retry with the same request_id"
ADMIN_SHUTDOWN = asyncpg.AdminShutdownError("terminating connection due to administrator command")
USED_AFTER_SHUTDOWN = asyncpg.InternalClientError(
    "cannot switch to state 12; another operation (2) is in progress"
)
RELEASED_AFTER_SHUTDOWN = asyncpg.InternalClientError(
    "cannot switch to state 15; another operation (2) is in progress"
)


class Written(Exception):
    """What the write's body raises when it got through (the answer stood)."""


# (where it fails, the failure) -> what the caller gets: a type, or Written when the
# statement's answer stood.
WRITE_CASES: dict[str, tuple[str, Exception, type[BaseException]]] = {
    "no connection to be had: nothing sent": (
        "acquire",
        ConnectionRefusedError("connect call failed"),
        StorageUnavailable,
    ),
    "the server starting up: nothing sent": (
        "acquire",
        asyncpg.CannotConnectNowError("the database system is starting up"),
        StorageUnavailable,
    ),
    "the session ended while the statement ran": (
        "statement",
        ADMIN_SHUTDOWN,
        WriteOutcomeUnknown,
    ),
    "closed in the middle of the statement": (
        "statement",
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        WriteOutcomeUnknown,
    ),
    "reset while the statement ran": (
        "statement",
        ConnectionResetError("connection reset by peer"),
        WriteOutcomeUnknown,
    ),
    "the statement's deadline ran out": ("statement", TimeoutError(), WriteOutcomeUnknown),
    "a broken pooled connection refuses the statement before sending it": (
        "statement",
        USED_AFTER_SHUTDOWN,
        StorageUnavailable,
    ),
    "a closed connection refuses the statement before sending it": (
        "statement",
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        StorageUnavailable,
    ),
    "a value the database cannot take": (
        "statement",
        asyncpg.DatetimeFieldOverflowError("date/time field value out of range"),
        InvalidArgument,
    ),
    "a unique violation passes unchanged": (
        "statement",
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.UniqueViolationError,
    ),
    "the release fails after the answer: the answer stands (defect 3)": (
        "release",
        RELEASED_AFTER_SHUTDOWN,
        Written,
    ),
    "the release is reset after the answer: the answer stands": (
        "release",
        ConnectionResetError("connection reset by peer"),
        Written,
    ),
}


@pytest.mark.parametrize(("where", "failure", "expected"), WRITE_CASES.values(), ids=WRITE_CASES)
async def test_storage_write_tells_what_a_failure_means_by_when_it_happened(
    where: str, failure: Exception, expected: type[BaseException]
) -> None:
    pool = FakePool(
        acquire_fails=failure if where == "acquire" else None,
        release_fails=failure if where == "release" else None,
    )

    async def write() -> None:
        async with storage_write(pool, if_unknown=ADVICE) as connection:  # type: ignore[arg-type]
            assert connection is pool.connection
            if where == "statement":
                raise failure
            raise Written

    with pytest.raises(expected) as raised:
        await write()
    if isinstance(raised.value, ServiceError):
        assert raised.value.__cause__ is failure
    if expected is WriteOutcomeUnknown:
        assert raised.value.args[0].endswith("outcome unknown; " + ADVICE)
    if expected is StorageUnavailable:
        assert not isinstance(raised.value, WriteOutcomeUnknown), "nothing was sent"
    if where != "acquire":
        assert pool.released == [pool.connection], "the connection went back to the pool"


async def test_storage_write_lets_a_bug_in_release_through() -> None:
    bug = asyncpg.InternalClientError("PoolConnectionHolder.release() called on a free holder")
    with pytest.raises(asyncpg.InternalClientError):
        async with storage_write(FakePool(release_fails=bug), if_unknown=ADVICE):  # type: ignore[arg-type]
            pass


# ---------------------------------------------------------------- create_pool


@pytest.mark.integration
async def test_create_pool_gives_up_after_connect_timeout_with_the_connection_error(
    nowhere_dsn: str, retry_log: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    with pytest.raises(OSError, match=r"Connect call failed|refused"):
        await create_pool(
            nowhere_dsn, min_size=1, max_size=1, connect_timeout=0.5, command_timeout=1
        )
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 5, f"gave up after {elapsed:.2f}s"
    assert retries(retry_log) >= 2, "it retried before giving up"


@pytest.mark.integration
async def test_create_pool_does_not_retry_what_retrying_cannot_fix(
    postgres_server: PostgresServer, retry_log: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await create_pool(
            postgres_server.dsn("no_such_database"),
            min_size=1,
            max_size=1,
            connect_timeout=5,
            command_timeout=1,
        )
    assert time.monotonic() - started < 4, "a missing database was retried until the timeout"
    assert retries(retry_log) == 0


@pytest.mark.integration
async def test_create_pool_on_a_running_server_answers(postgres_server: PostgresServer) -> None:
    pool = await create_pool(
        postgres_server.dsn(), min_size=1, max_size=2, connect_timeout=5, command_timeout=5
    )
    try:
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
