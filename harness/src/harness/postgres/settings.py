"""The server's settings: for throwaway data, for kept data, and the ones a test may change
while it runs (``ALTER SYSTEM`` and a reload)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from harness.errors import PostgresStartError

if TYPE_CHECKING:
    from collections.abc import Mapping

from harness.postgres.account import RunAs
from harness.postgres.output import read_text

__all__ = [
    "DURABLE_SETTINGS",
    "RELOADABLE_SETTINGS",
    "THROWAWAY_SETTINGS",
    "alter_system",
    "write_auto_conf",
]


# The data is thrown away after the run: durability only costs time. Dynamic shared
# memory goes to files in the data directory (not /dev/shm) so that a killed server
# leaves nothing outside the directory the reaper deletes. WAL is capped because the
# directory is usually in RAM (see default_tmp_root).
THROWAWAY_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "max_wal_size": "256MB",
    "min_wal_size": "32MB",
    "dynamic_shared_memory_type": "mmap",
    "jit": "off",
    "logging_collector": "off",
}

# Settings a test may change while the server runs (ALTER SYSTEM and a reload, e.g.
# PostgresControl.durable): they go to postgresql.auto.conf, which ALTER SYSTEM rewrites,
# and not to the command line, which would outrank it.
RELOADABLE_SETTINGS = frozenset({"synchronous_commit"})

# For data that is kept: a commit is acknowledged once it is on disk, so neither a crash
# of the server nor one of the machine loses it.
DURABLE_SETTINGS: Mapping[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}

_RELOAD_POLL_SECONDS = 0.01


def write_auto_conf(data_dir: Path, settings: Mapping[str, str], run_as: RunAs | None) -> None:
    """Set ``settings`` in the cluster's postgresql.auto.conf, as ALTER SYSTEM would: a
    kept cluster (``data_dir``) is started many times, so earlier lines for the same
    names are replaced rather than piled up."""
    auto_conf = data_dir / "postgresql.auto.conf"
    kept = [
        line
        for line in read_text(auto_conf).splitlines(keepends=True)
        if line.split("=", 1)[0].strip() not in settings
    ]
    lines = "".join(
        f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n" for name, value in settings.items()
    )
    existing = "".join(kept)
    if existing and not existing.endswith("\n"):
        existing += "\n"
    auto_conf.write_text(existing + lines)
    if run_as:
        os.chown(auto_conf, run_as.uid, run_as.gid)


async def alter_system(dsn: str, name: str, value: str | None, within: float = 10.0) -> None:
    """``ALTER SYSTEM SET name = value`` (``RESET`` for None), reload, and return once every
    session will use it: each reads the file again before its next statement."""

    async def load_time(*then: str) -> object:
        """When a new session read the configuration (before it runs ``then``)."""
        connection = await asyncpg.connect(dsn, timeout=within)
        try:
            loaded = await connection.fetchval("SELECT pg_conf_load_time()")
            for statement in then:  # one by one: ALTER SYSTEM refuses a transaction block
                await connection.execute(statement)
            return loaded
        finally:
            await connection.close()

    change = (
        f"ALTER SYSTEM RESET {name}"
        if value is None
        else f"ALTER SYSTEM SET {name} = '{value.replace(chr(39), chr(39) * 2)}'"
    )
    before = await load_time(change, "SELECT pg_reload_conf()")
    # pg_reload_conf only signals the postmaster. Once a new session's load time is later,
    # it has read the file again and signalled every session.
    for _ in range(int(within / _RELOAD_POLL_SECONDS)):
        if await load_time() != before:
            return
        await asyncio.sleep(_RELOAD_POLL_SECONDS)
    raise PostgresStartError(
        f"the server did not read its configuration again within {within} s of "
        f"pg_reload_conf() (after {change!r})"
    )
