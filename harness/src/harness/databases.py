"""Declared databases: migrated once into a template, then cleaned before every test.

For each :class:`DatabaseSpec` the harness creates ``<name>_template``, runs the spec's
``migrate`` on it once, and creates the working database ``<name>`` from it. Before each
test the working databases are brought back to the template's state by one of two
strategies (:class:`CleanStrategy`):

``reset`` (default)
    One ``TRUNCATE ... RESTART IDENTITY CASCADE`` of every table but ``schema_migrations``,
    computed once from the catalog, sent on a connection kept open for the session: a
    single round trip. Connections that services keep open survive it. It needs the
    migrations to leave every table empty (checked at set-up).
``clone``
    Drop the working database (terminating its connections) and create it again from the
    template with ``STRATEGY FILE_COPY``. Restores anything, seed rows included, and costs
    tens of milliseconds; open connections are cut.

    with databases_from_templates(server, specs, CleanStrategy.RESET) as databases:
        dsns = databases.clean()   # before each test
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from harness._loop import BackgroundLoop
from harness.errors import DatabaseSetupError
from harness.postgres import PostgresEndpoint

__all__ = [
    "MIGRATIONS_TABLE",
    "TEMPLATE_SUFFIX",
    "CleanStrategy",
    "DatabaseSpec",
    "Databases",
    "databases_from_templates",
]

MIGRATIONS_TABLE = "schema_migrations"
TEMPLATE_SUFFIX = "_template"
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_MAX_NAME = 63 - len(TEMPLATE_SUFFIX)  # PostgreSQL truncates identifiers at 63 bytes
_RESERVED = frozenset({"postgres", "template0", "template1"})
# Bounds every statement the harness sends; a lock held by a connection an earlier test
# left in a transaction must fail the clean-up with a message, not hang the run.
_LOCK_TIMEOUT = "10s"
_CLEAN_TIMEOUT_SECONDS = 60.0
_SETUP_TIMEOUT_SECONDS = 300.0
# What a kept connection raises when the server went away under it.
_CONNECTION_LOST = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError)


class CleanStrategy(enum.StrEnum):
    """How a working database is brought back to its template's state before a test."""

    RESET = "reset"
    CLONE = "clone"


@dataclass(frozen=True)
class DatabaseSpec:
    """A database the tests need: its name and the coroutine that migrates it.

    ``migrate`` receives a DSN and applies that service's migrations, e.g.
    ``lambda dsn: servicekit.migrations.migrate(dsn, folder)``.
    """

    name: str
    migrate: Callable[[str], Awaitable[object]]

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or len(self.name) > _MAX_NAME:
            raise ValueError(
                f"database name {self.name!r}: use lower-case letters, digits and underscores, "
                f"starting with a letter or underscore, at most {_MAX_NAME} characters"
            )
        if self.name in _RESERVED or self.name.endswith(TEMPLATE_SUFFIX):
            raise ValueError(
                f"database name {self.name!r} is reserved (postgres, template0, template1 "
                f"and names ending in {TEMPLATE_SUFFIX!r} are the harness's own)"
            )

    @property
    def template(self) -> str:
        return self.name + TEMPLATE_SUFFIX


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class Databases:
    """The working databases of one server; :meth:`clean` restores them. Built by
    :func:`databases_from_templates`."""

    def __init__(
        self,
        server: PostgresEndpoint,
        specs: Sequence[DatabaseSpec],
        strategy: CleanStrategy,
        loop: BackgroundLoop,
    ) -> None:
        self.server = server
        self.specs = tuple(specs)
        self.strategy = strategy
        self._loop = loop
        self._admin: asyncpg.Connection | None = None
        # Per database: a connection kept open, and the statement that empties it.
        # Per database: its name, a connection kept open, and the statement that empties it.
        self._resets: list[tuple[str, asyncpg.Connection, str]] = []

    @property
    def dsns(self) -> Mapping[str, str]:
        """name -> DSN of every working database (read anew: a container's port can move)."""
        return {spec.name: self.server.dsn(spec.name) for spec in self.specs}

    def clean(self) -> Mapping[str, str]:
        """Bring every working database back to its template's state; return name → DSN."""
        self._loop.run(self._clean(), timeout=_CLEAN_TIMEOUT_SECONDS)
        return self.dsns

    async def _clean(self) -> None:
        if self.strategy is CleanStrategy.RESET:
            try:
                await asyncio.gather(*(self._reset(index) for index in range(len(self._resets))))
            except asyncpg.LockNotAvailableError as error:
                raise DatabaseSetupError(
                    f"resetting the databases timed out waiting for a lock ({error}): a "
                    "connection opened by an earlier test is still inside a transaction. "
                    "Remedy: commit or roll back, and close connections and pools, before a "
                    "test ends (or use --harness-db-reset=clone, which cuts them)"
                ) from error
        else:
            for spec in self.specs:
                await self._clone(spec)

    async def _reset(self, index: int) -> None:
        name, connection, statement = self._resets[index]
        if connection.is_closed():
            # The server dropped it (a restart; a container joining a network cuts the
            # connections its published port carried): reconnect.
            connection = await self._connect(name)
            self._resets[index] = (name, connection, statement)
        try:
            await connection.execute(statement)
        except _CONNECTION_LOST:
            # Dropped so recently that the loop had not noticed yet (a fault test restarted
            # the server just before): reconnect, once.
            connection.terminate()
            connection = await self._connect(name)
            self._resets[index] = (name, connection, statement)
            await connection.execute(statement)

    async def _admin_connection(self) -> asyncpg.Connection:
        if self._admin is None or self._admin.is_closed():
            self._admin = await self._connect("postgres")
        return self._admin

    async def _clone(self, spec: DatabaseSpec) -> None:
        try:
            await self._clone_on(await self._admin_connection(), spec)
        except _CONNECTION_LOST:
            assert self._admin is not None
            self._admin.terminate()  # see _reset
            self._admin = None
            await self._clone_on(await self._admin_connection(), spec)

    async def _clone_on(self, admin: asyncpg.Connection, spec: DatabaseSpec) -> None:
        await admin.execute(f"DROP DATABASE IF EXISTS {_quote(spec.name)} WITH (FORCE)")
        # FILE_COPY copies the template's files (after a checkpoint, cheap with fsync off);
        # servers before 15 have no STRATEGY and always copy files.
        strategy = " STRATEGY FILE_COPY" if self.server.major >= 15 else ""
        await admin.execute(
            f"CREATE DATABASE {_quote(spec.name)} TEMPLATE {_quote(spec.template)}{strategy}"
        )

    async def _set_up(self) -> None:
        names = [spec.name for spec in self.specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise DatabaseSetupError(f"databases declared more than once: {duplicates}")
        self._admin = await self._connect("postgres")
        for spec in self.specs:
            await self._create_template(spec)
            await self._clone(spec)
            if self.strategy is CleanStrategy.RESET:
                connection = await self._connect(spec.name)
                try:
                    statement = await _reset_statement(connection, spec)
                except BaseException:
                    await connection.close()
                    raise
                if statement is None:  # nothing to empty: no need to hold a connection either
                    await connection.close()
                else:
                    self._resets.append((spec.name, connection, statement))

    async def _create_template(self, spec: DatabaseSpec) -> None:
        assert self._admin is not None
        # Dropped first so that set-up can be repeated on one server (a benchmark does).
        for name in (spec.name, spec.template):
            await self._admin.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
        await self._admin.execute(f"CREATE DATABASE {_quote(spec.template)}")
        try:
            await spec.migrate(self.server.dsn(spec.template))
        except Exception as error:
            failure = DatabaseSetupError(
                f"migrating database {spec.name!r} (template {spec.template!r}) failed: "
                f"{type(error).__name__}: {error}"
            )
            log = self.server.log_tail(15)
            failure.add_note(f"Server log ({self.server.log_location}):\n{log}")
            raise failure from error
        # A connection the migration left open would make every CREATE DATABASE from this
        # template fail ("source database is being accessed by other users"): cut them, and
        # refuse new ones.
        await self._admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            spec.template,
        )
        await self._admin.execute(
            f"ALTER DATABASE {_quote(spec.template)} WITH ALLOW_CONNECTIONS false"
        )

    async def _connect(self, database: str) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.server.dsn(database),
            ssl=False,
            server_settings={"lock_timeout": _LOCK_TIMEOUT, "application_name": "harness"},
        )

    async def _close(self) -> None:
        connections = [connection for _, connection, _ in self._resets]
        if self._admin is not None:
            connections.append(self._admin)
        await asyncio.gather(*(connection.close() for connection in connections))
        self._resets.clear()
        self._admin = None


async def _reset_statement(connection: asyncpg.Connection, spec: DatabaseSpec) -> str | None:
    """The one statement that empties a database migrated from the template.

    Every ordinary or partitioned table outside the system schemas, except the
    migrations table and what extensions own; sequences that no column owns are set
    back to their template values (RESTART IDENTITY covers the owned ones).
    """
    tables: list[str] = [
        row["name"]
        for row in await connection.fetch(
            """
            SELECT format('%I.%I', n.nspname, c.relname) AS name
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
              AND c.relname <> $1
              AND NOT EXISTS (SELECT 1 FROM pg_depend d
                              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                AND d.deptype = 'e')
            ORDER BY 1
            """,
            MIGRATIONS_TABLE,
        )
    ]
    # Unset sequences (never called) have no last_value: back to their start, uncalled.
    restores: list[str] = [
        row["restore"]
        for row in await connection.fetch(
            """
            SELECT format('setval(%L, %s, %L)', format('%I.%I', s.schemaname, s.sequencename),
                          coalesce(s.last_value, s.start_value), s.last_value IS NOT NULL)
                   AS restore
            FROM pg_sequences s
            JOIN pg_namespace n ON n.nspname = s.schemaname
            JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
            WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d
                              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                AND d.deptype IN ('a', 'i', 'e'))
            ORDER BY 1
            """
        )
    ]
    seeded = [
        table
        for table in tables
        if await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})")  # noqa: S608 - catalog names, quoted by format('%I')
    ]
    if seeded:
        raise DatabaseSetupError(
            f"the migrations of database {spec.name!r} leave rows in {', '.join(seeded)}; the "
            f"reset strategy empties every table but {MIGRATIONS_TABLE} and would delete them. "
            "Remedy: use --harness-db-reset=clone (ini: harness_db_reset = clone), which "
            "restores the template's rows, or create such rows in fixtures instead"
        )
    statements = []
    if tables:
        statements.append(f"TRUNCATE TABLE {', '.join(tables)} RESTART IDENTITY CASCADE")
    if restores:
        statements.append(f"SELECT {', '.join(restores)}")
    # Several statements in one simple-protocol message: still one round trip.
    return ";\n".join(statements) or None


@contextlib.contextmanager
def databases_from_templates(
    server: PostgresEndpoint, specs: Sequence[DatabaseSpec], strategy: CleanStrategy
) -> Iterator[Databases]:
    """Create and migrate a template per spec, create the working databases, yield them."""
    with BackgroundLoop("harness-databases") as loop:
        databases = Databases(server, specs, strategy, loop)
        try:
            loop.run(databases._set_up(), timeout=_SETUP_TIMEOUT_SECONDS)
            yield databases
        finally:
            loop.run(databases._close(), timeout=_CLEAN_TIMEOUT_SECONDS)
