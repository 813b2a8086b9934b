"""Benchmark of the harness's stacks: cold boot of Postgres + every service, and the
per-test clean state of the whole stack, on each backend.

    uv run python scripts/bench_stack.py                      # both backends
    uv run python scripts/bench_stack.py --backend process --runs 5 --iterations 200

Cold boot: from nothing running (images built, initdb cluster cached) to every
service answering its health check: Postgres started, each database migrated into
its template and created, auth, user and dummy started (dummy after user). Clean
state: what the `stack` fixture does before each test (reset every database, heal
the services, empty the trace receiver), timed alone after a few writes. Prints
min/median boot and median/p95 clean, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib.resources import files
from pathlib import Path

import grpc

from harness import Backend, Stack, StackRequest
from harness.backends.docker import DockerBackend
from harness.backends.process import ProcessBackend
from harness.databases import CleanStrategy, Databases, DatabaseSpec, databases_from_templates
from harness.postgres import find_postgres_binaries, run_postgres
from harness.services import ServiceSpec, workspace_services
from servicekit.migrations import migrate
from user.v1 import user_pb2, user_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("auth", "user", "dummy")


def database_specs() -> list[DatabaseSpec]:
    return [
        DatabaseSpec(name, functools.partial(migrate, folder=files(name) / "migrations"))
        for name in SERVICES
    ]


@contextmanager
def booted(
    backend_name: str,
    postgres_image: str,
    services: tuple[str, ...] = SERVICES,
    specs: list[ServiceSpec] | None = None,
) -> Iterator[tuple[Stack, Databases, float]]:
    """A stack of ``services`` (and what they call), from ``specs`` (default: the
    workspace's); yields it, its databases and the seconds the cold boot took."""
    started = time.monotonic()
    with ExitStack() as cleanup:
        backend: Backend
        if backend_name == "docker":
            docker_backend = DockerBackend(postgres_image)
            cleanup.callback(docker_backend.close)
            server = docker_backend.postgres
            backend = docker_backend
            databases = cleanup.enter_context(
                databases_from_templates(server, database_specs(), CleanStrategy.RESET)
            )
        else:
            local = cleanup.enter_context(run_postgres(find_postgres_binaries(), label="bench"))
            databases = cleanup.enter_context(
                databases_from_templates(local, database_specs(), CleanStrategy.RESET)
            )
            process_backend = ProcessBackend(local, Path(tempfile.mkdtemp(prefix="bench-logs-")))
            cleanup.callback(process_backend.close)
            backend = process_backend
        declared = specs if specs is not None else workspace_services(ROOT)
        stack = Stack.boot(backend, declared, StackRequest(services))
        cleanup.callback(stack.close)
        yield stack, databases, time.monotonic() - started


async def write_some(stack: Stack, count: int) -> None:
    async with grpc.aio.insecure_channel(stack.address("user")) as channel:
        users = user_pb2_grpc.UserServiceStub(channel)
        for index in range(count):
            await users.CreateUser(
                user_pb2.CreateUserRequest(email=f"bench{index}@example.com"), timeout=10
            )


def bench(backend: str, runs: int, iterations: int, postgres_image: str) -> None:
    boots = []
    for run in range(runs):
        with booted(backend, postgres_image) as (stack, databases, seconds):
            boots.append(seconds * 1000)
            if run == runs - 1:
                cleans = []
                for _ in range(iterations):
                    asyncio.run(write_some(stack, 2))
                    started = time.perf_counter()
                    stack.heal()
                    databases.clean()
                    cleans.append((time.perf_counter() - started) * 1000)
    print(
        f"{backend:<8} cold boot (postgres + auth + user + dummy)  "
        f"min {min(boots):7.0f}  median {statistics.median(boots):7.0f} ms   n={runs}"
    )
    cleans.sort()
    p95 = cleans[int(len(cleans) * 0.95) - 1]
    print(
        f"{backend:<8} clean state per test (3 databases, heal)   "
        f"median {statistics.median(cleans):6.2f}  p95 {p95:6.2f} ms   n={iterations}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=["process", "docker", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3, help="cold boots per backend")
    parser.add_argument("--iterations", type=int, default=100, help="clean states timed")
    parser.add_argument("--postgres-image", default="kit/postgres:15")
    args = parser.parse_args()
    backends = ["process", "docker"] if args.backend == "both" else [args.backend]
    for backend in backends:
        bench(backend, args.runs, args.iterations, args.postgres_image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
