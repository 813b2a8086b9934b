"""Versioned plain-SQL migrations, applied at start-up.

Why not a library: yoyo-migrations and alembic need a second, synchronous driver
(psycopg / SQLAlchemy) beside asyncpg, and the asyncpg-native runners are small
single-maintainer projects. The job is small enough to own: files named
``NNNN_description.sql`` in a package folder, applied in order, each in its own
transaction, recorded in ``schema_migrations`` with a checksum, under an advisory
lock so that replicas starting together apply each migration exactly once.

An applied migration whose file changed, or disappeared, stops start-up: the
database and the code disagree, and guessing would lose data.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

logger = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every replica of every service.
ADVISORY_LOCK_KEY = 0x6D696772  # "migr"


class MigrationError(Exception):
    """The migrations folder or the database's migration history is inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(folder: Traversable | Path) -> list[Migration]:
    """Every ``NNNN_name.sql`` in ``folder``, ordered; other .sql names are an error."""
    migrations: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = MIGRATION_NAME.match(entry.name)
        if match is None:
            raise MigrationError(
                f"{entry.name}: migration files must be named NNNN_description.sql "
                "(four digits, lower-case letters, digits and underscores)"
            )
        migrations.append(
            Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
        )
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise MigrationError(f"several migrations share the version(s) {duplicates}")
    return migrations


async def apply_migrations(
    connection: asyncpg.Connection | PoolConnectionProxy, migrations: list[Migration]
) -> list[Migration]:
    """Apply the pending migrations; return those applied by this call."""
    await connection.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await connection.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await connection.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: row for row in rows}
        known = {m.version: m for m in migrations}
        for version, row in sorted(applied.items()):
            migration = known.get(version)
            if migration is None:
                raise MigrationError(
                    f"migration {version:04d}_{row['name']} is applied to the database "
                    "but its file is missing; restore the file"
                )
            if migration.checksum != row["checksum"]:
                raise MigrationError(
                    f"migration {version:04d}_{migration.name} changed after it was applied; "
                    "write a new migration instead of editing an applied one"
                )
        pending = [m for m in migrations if m.version not in applied]
        for migration in pending:
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            logger.info("applied migration %04d_%s", migration.version, migration.name)
        return pending
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


async def migrate(dsn: str, folder: Traversable | Path) -> list[Migration]:
    """Connect to ``dsn`` and apply the migrations in ``folder`` on that connection alone
    (the runner at start-up, tests and tools), without a statement deadline."""
    migrations = load_migrations(folder)
    connection = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(connection, migrations)
    finally:
        await connection.close()
