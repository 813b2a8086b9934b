"""Start the gateway: the composition root (settings, logging, telemetry, channels, uvicorn).

On SIGTERM/SIGINT uvicorn stops accepting and the connections drain (``gateway.server``:
every request read is answered, with ``Connection: close``) within
``GATEWAY_SHUTDOWN_GRACE_SECONDS``; then the channels are closed and the remaining spans
flushed.
"""

from __future__ import annotations

import uvicorn
import uvloop

from gateway.app import create_app
from gateway.clients import connect
from gateway.server import AnnouncingServer, GatewayHttpProtocol
from gateway.settings import GatewaySettings
from gateway.tracing import install_tracing
from servicekit.logging import configure_logging
from servicekit.telemetry import Telemetry, start_telemetry


async def serve(settings: GatewaySettings, telemetry: Telemetry) -> None:
    clients = connect(settings)
    try:
        app = create_app(settings, clients)
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
        await AnnouncingServer(config).serve()
    finally:
        await clients.close()


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    telemetry = start_telemetry("gateway")
    telemetry.install()
    try:
        # uvloop: the same asyncio, a faster event loop (uvicorn and grpc.aio run on it).
        uvloop.run(serve(settings, telemetry))
    finally:
        telemetry.shutdown()
