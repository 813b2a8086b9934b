"""Benchmark of the harness's Postgres: cold start, and the per-test clean state.

    uv run python scripts/bench_postgres.py                      # defaults below
    uv run python scripts/bench_postgres.py --databases 3 --iterations 500

Cold start is what a session (or an xdist worker) pays once: initdb (or a copy of the
cached cluster) + start + first accepted connection; measured with the cache and
without it. The clean state is what every test pays: each iteration dirties every table
of every database (a row each, like a small test), then times ``Databases.clean()``
alone, for both strategies. Prints min/median for starts, median/p95 for cleans, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from harness.databases import CleanStrategy, DatabaseSpec, databases_from_templates
from harness.postgres import (
    PostgresBinaries,
    default_tmp_root,
    find_postgres_binaries,
    run_postgres,
)

# A typical small service schema: a migrations table, a few tables with foreign keys,
# identities, indexes and a check constraint.
SCHEMA = """
CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz DEFAULT now());
INSERT INTO schema_migrations (version) VALUES (1), (2), (3);
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash bytea NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE TABLE items (
    id bigserial PRIMARY KEY,
    owner_id bigint NOT NULL REFERENCES users (id),
    title text NOT NULL CHECK (title <> ''),
    body text NOT NULL DEFAULT ''
);
CREATE INDEX items_owner_id ON items (owner_id);
CREATE TABLE oauth_accounts (
    provider text NOT NULL,
    subject text NOT NULL,
    user_id bigint NOT NULL REFERENCES users (id),
    PRIMARY KEY (provider, subject)
);
"""

DIRTY = """
WITH u AS (INSERT INTO users (email) VALUES ('ann@example.com') RETURNING id)
, s AS (INSERT INTO sessions SELECT gen_random_uuid(), id, '\\x00', now() FROM u)
, i AS (INSERT INTO items (owner_id, title) SELECT id, 'note' FROM u)
INSERT INTO oauth_accounts SELECT 'github', '42', id FROM u
"""


async def migrate(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(SCHEMA)
    finally:
        await connection.close()


def ms(seconds: float) -> float:
    return seconds * 1000


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


def bench_cold_start(binaries: PostgresBinaries, root: Path, runs: int, use_cache: bool) -> None:
    starts, stops = [], []
    with tempfile.TemporaryDirectory(prefix="harness-bench-cache-") as cache:
        if use_cache:  # warm it: the first run of a machine pays initdb once
            with run_postgres(binaries, cache_dir=Path(cache), tmp_root=root):
                pass
        for _ in range(runs):
            began = time.perf_counter()
            with run_postgres(binaries, cache_dir=Path(cache), use_cache=use_cache, tmp_root=root):
                ready = time.perf_counter()
            stops.append(ms(time.perf_counter() - ready))
            starts.append(ms(ready - began))
    label = "cold start, cluster cache" if use_cache else "cold start, initdb each time"
    print(
        f"{label:<34} min {min(starts):7.1f}  median {statistics.median(starts):7.1f}"
        f"   (stop: median {statistics.median(stops):5.1f})   n={runs}"
    )


async def dirty(connections: list[asyncpg.Connection]) -> None:
    await asyncio.gather(*(connection.execute(DIRTY) for connection in connections))


def bench_clean(
    binaries: PostgresBinaries,
    root: Path,
    strategy: CleanStrategy,
    databases: int,
    iterations: int,
) -> None:
    specs = [DatabaseSpec(f"service_{index}", migrate) for index in range(databases)]
    with run_postgres(binaries, tmp_root=root) as server:
        began = time.perf_counter()
        with databases_from_templates(server, specs, strategy) as prepared:
            setup = ms(time.perf_counter() - began)
            samples = []
            for _ in range(iterations):
                dsns = list(prepared.clean().values())

                async def write_rows(dsns: list[str] = dsns) -> None:
                    connections = [await asyncpg.connect(dsn, ssl=False) for dsn in dsns]
                    try:
                        await dirty(connections)
                    finally:
                        await asyncio.gather(*(c.close() for c in connections))

                asyncio.run(write_rows())
                began = time.perf_counter()
                prepared.clean()
                samples.append(ms(time.perf_counter() - began))
    label = f"clean state, {strategy} ({databases} db)"
    print(
        f"{label:<34} median {statistics.median(samples):6.2f}  p95 {p95(samples):6.2f}"
        f"   (templates + migrations: {setup:.0f})   n={iterations}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", type=Path, help="PostgreSQL bin directory (default: search)")
    parser.add_argument("--runs", type=int, default=7, help="cold starts per variant")
    parser.add_argument("--iterations", type=int, default=200, help="cleans per strategy")
    parser.add_argument("--databases", type=int, default=1, help="databases cleaned together")
    parser.add_argument(
        "--tmp-root", type=Path, help="where the server's files go (default: as the harness)"
    )
    args = parser.parse_args()

    binaries = find_postgres_binaries(args.bin)
    root: Path = args.tmp_root or default_tmp_root()
    print(f"PostgreSQL {binaries.version} in {binaries.bindir} ({binaries.found_by})")
    print(f"server files under {root}; times in ms")
    bench_cold_start(binaries, root, args.runs, use_cache=True)
    bench_cold_start(binaries, root, args.runs, use_cache=False)
    for strategy in CleanStrategy:
        bench_clean(binaries, root, strategy, args.databases, args.iterations)


if __name__ == "__main__":
    main()
