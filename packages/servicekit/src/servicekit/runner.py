"""The life of a service process: the shared part of every service's ``main``.

settings → logging → telemetry → pool (retried) → migrations → server →
SIGTERM/SIGINT → graceful stop (NOT_SERVING, drain in-flight calls) → pool closed →
buffered spans exported.

Telemetry follows the standard OpenTelemetry environment variables (see
:mod:`servicekit.telemetry`): with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans go there.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import Generic, TypeVar

import asyncpg
import uvloop
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from servicekit.calls import CallPolicy
from servicekit.logging import configure_logging
from servicekit.migrations import migrate
from servicekit.postgres import create_pool
from servicekit.server import ServiceRegistration, create_server
from servicekit.settings import ServiceSettings
from servicekit.telemetry import start_telemetry

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class ServiceDefinition(Generic[S]):
    """What a service tells the runner about itself."""

    name: str
    migrations: Traversable
    # Builds the servicers from the pool and settings: the service's composition root.
    # Resources it opens (an HTTP client, say) go on the exit stack, which is closed
    # after the server has drained.
    build: Callable[[asyncpg.Pool, S, AsyncExitStack], Sequence[ServiceRegistration]]


async def run_service(definition: ServiceDefinition[S], settings: S) -> None:
    configure_logging(definition.name, settings.log_level)
    telemetry = start_telemetry(definition.name)
    telemetry.install()
    try:
        await _serve(definition, settings, telemetry.tracer_provider)
    finally:
        # Off the loop: the flush blocks (bounded) on the export of the last spans.
        await asyncio.to_thread(telemetry.shutdown)
    logger.info("stopped")


async def _serve(
    definition: ServiceDefinition[S], settings: S, tracer_provider: TracerProvider
) -> None:
    pool = await create_pool(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        connect_timeout=settings.db_connect_timeout_seconds,
        command_timeout=settings.db_command_timeout_seconds,
    )
    try:
        # On a connection of their own, once the pool has seen the database answer:
        # without the pool's statement deadline (db_command_timeout_seconds), which would
        # end a replica waiting for the advisory lock while another replica migrates, or
        # a migration slower than a query; and without leaving the lock's session state
        # on a pooled connection.
        await migrate(settings.database_url, definition.migrations)
        async with AsyncExitStack() as resources:
            server = create_server(
                f"{settings.grpc_host}:{settings.grpc_port}",
                definition.build(pool, settings, resources),
                tracer_provider=tracer_provider,
                policy=CallPolicy(settings.access_log, settings.slow_call_seconds),
                max_connection_age_seconds=settings.max_connection_age_seconds,
                max_connection_age_grace_seconds=settings.shutdown_grace_seconds,
            )
            await server.start()
            # One parseable line that launchers (the harness, scripts/dev.py) wait for.
            logger.info(
                "serving",
                extra={"grpc_address": f"{settings.grpc_host}:{server.port}", "port": server.port},
            )
            await _wait_for_stop_signal()
            logger.info(
                "stopping: draining in-flight calls for up to %ss", settings.shutdown_grace_seconds
            )
            await server.stop(settings.shutdown_grace_seconds)
    finally:
        await pool.close()


def main(definition: ServiceDefinition[S], settings_class: type[S]) -> None:
    """``python -m <service>``: read the settings from the environment, run until stopped.

    A missing or invalid setting ends the process with status 2 and one line per
    problem, naming the environment variable, instead of a traceback.
    """
    try:
        settings = settings_class()
    except ValidationError as error:
        prefix = str(settings_class.model_config.get("env_prefix", ""))
        print(f"{definition.name}: invalid configuration:", file=sys.stderr)
        for problem in error.errors():
            if problem["loc"]:
                variable = prefix + "_".join(str(part) for part in problem["loc"]).upper()
                print(f"  {variable}: {problem['msg']}", file=sys.stderr)
            else:  # a check across fields says which variables itself
                print(f"  {problem['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    # uvloop: the same asyncio, a faster event loop (grpc.aio and asyncpg both run on it).
    uvloop.run(run_service(definition, settings))


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # A parent may have left these blocked (the mask survives exec): unblocked, a
    # SIGTERM always reaches the handler instead of waiting forever.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
