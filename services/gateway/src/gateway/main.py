"""Start the gateway: the composition root (settings, logging, telemetry, channels, uvicorn).

``GATEWAY_WORKERS`` processes serve (default 1; ``auto``: one per CPU this process may
use); with more than one, this process supervises them on one shared socket
(``gateway.workers``).

On SIGTERM/SIGINT uvicorn stops accepting and the connections drain (``gateway.server``:
every request read is answered, with ``Connection: close``) within
``GATEWAY_SHUTDOWN_GRACE_SECONDS``; then the channels are closed and the remaining spans
flushed.
"""

from __future__ import annotations

import functools
import socket
import sys
from collections.abc import Callable

import uvicorn
import uvloop
from fastapi import FastAPI

from gateway.app import create_app
from gateway.clients import Clients, connect
from gateway.server import AnnouncingServer, GatewayHttpProtocol
from gateway.settings import GatewaySettings
from gateway.tracing import install_tracing
from gateway.workers import Supervisor, bind_socket
from servicekit.logging import configure_logging
from servicekit.telemetry import Telemetry, start_telemetry

AppFactory = Callable[[GatewaySettings, Clients], FastAPI]


async def serve(
    settings: GatewaySettings,
    telemetry: Telemetry,
    sock: socket.socket | None = None,
    on_serving: Callable[[], None] | None = None,
    app_factory: AppFactory = create_app,
) -> None:
    """Serve on ``settings``' host and port, or on ``sock`` (a worker's shared socket), until
    SIGTERM/SIGINT. ``on_serving`` replaces the "serving" log line (a worker tells its
    supervisor instead)."""
    clients = connect(settings)
    try:
        app = app_factory(settings, clients)
        install_tracing(
            app,
            telemetry.tracer_provider,
            access_log=settings.access_log,
            slow_request_seconds=settings.slow_request_seconds,
        )
        config = uvicorn.Config(
            app,
            http=GatewayHttpProtocol,  # httptools; framing errors shaped, drain on SIGTERM
            host=settings.host,
            port=settings.port,
            log_config=None,  # keep the JSON logging configured above
            access_log=False,  # the tracing middleware logs requests, inside their span
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
            # Each request in a context of its own: a pipelined request's task is created
            # while the one before it answers, and would otherwise inherit its trace.
            reset_contextvars=True,
        )
        server = AnnouncingServer(config, on_serving=on_serving)
        await server.serve(sockets=[sock] if sock is not None else None)
    finally:
        await clients.close()


def run_gateway(
    settings: GatewaySettings,
    sock: socket.socket | None = None,
    on_serving: Callable[[], None] | None = None,
    app_factory: AppFactory = create_app,
) -> None:
    """One serving process: its telemetry, its event loop, the server."""
    configure_logging("gateway", settings.log_level)
    telemetry = start_telemetry("gateway")
    telemetry.install()
    try:
        # uvloop: the same asyncio, a faster event loop (uvicorn and grpc.aio run on it).
        uvloop.run(serve(settings, telemetry, sock, on_serving, app_factory))
    finally:
        telemetry.shutdown()


def main(app_factory: AppFactory = create_app) -> None:
    """``app_factory``: another app around the gateway's (scripts/bench_floor.py); with
    several workers it is pickled to each, so it must be a module-level function."""
    settings = GatewaySettings()
    if settings.worker_count == 1:
        run_gateway(settings, app_factory=app_factory)
        return
    configure_logging("gateway", settings.log_level)
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as error:
        print(
            f"gateway: cannot listen on {settings.host}:{settings.port}: {error}", file=sys.stderr
        )
        sys.exit(1)
    worker = functools.partial(run_gateway, app_factory=app_factory)
    sys.exit(Supervisor(settings, sock, worker).run())
