"""Start the gateway: the composition root (settings, logging, telemetry, channels, uvicorn).

uvicorn handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish
within ``GATEWAY_SHUTDOWN_GRACE_SECONDS``, then the channels are closed and the
remaining spans flushed.
"""

from __future__ import annotations

import asyncio

import uvicorn
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from gateway.app import create_app
from gateway.clients import connect
from gateway.settings import GatewaySettings
from servicekit.logging import configure_logging
from servicekit.telemetry import Telemetry, start_telemetry


async def serve(settings: GatewaySettings, telemetry: Telemetry) -> None:
    clients = connect(settings)
    try:
        app = create_app(settings, clients)
        FastAPIInstrumentor.instrument_app(app, tracer_provider=telemetry.tracer_provider)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,  # keep the JSON logging configured above
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        )
        await uvicorn.Server(config).serve()
    finally:
        await clients.close()


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    telemetry = start_telemetry("gateway")
    telemetry.install()
    try:
        asyncio.run(serve(settings, telemetry))
    finally:
        telemetry.shutdown()
