"""Start the gateway: the composition root (settings, logging, telemetry, channels, uvicorn).

uvicorn handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish
within ``GATEWAY_SHUTDOWN_GRACE_SECONDS``, then the channels are closed and the
remaining spans flushed.
"""

from __future__ import annotations

import logging
import socket

import uvicorn
import uvloop

from gateway.app import create_app
from gateway.clients import connect
from gateway.settings import GatewaySettings
from gateway.tracing import install_tracing
from servicekit.logging import configure_logging
from servicekit.telemetry import Telemetry, start_telemetry

logger = logging.getLogger(__name__)


class AnnouncingServer(uvicorn.Server):
    """uvicorn, and once it listens the one JSON "serving" line (with the bound port, so
    port 0 works) that launchers wait for, as every service of the kit logs it."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:  # the bind failed; uvicorn says why
            return
        port = self.servers[0].sockets[0].getsockname()[1] if self.servers else 0
        logger.info(
            "serving",
            extra={"http_address": f"http://{self.config.host}:{port}", "port": port},
        )


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
            host=settings.host,
            port=settings.port,
            log_config=None,  # keep the JSON logging configured above
            access_log=False,  # the tracing middleware logs requests, inside their span
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
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
