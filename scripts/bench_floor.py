"""The floor of scripts/bench_gateway.py: the backend's server stack with nothing behind it.

Two processes, each started by the kit's own entry point so that the floor follows
whatever the kit's servers become (event loop, middleware, handler wrappers, logging,
telemetry), with no copy of their set-up here:

- ``BENCH_FLOOR_ROLE=echo``: a gRPC service run by ``servicekit.runner.main`` (settings,
  logging, telemetry, pool, ``create_server`` and its handler wrappers, signals), whose
  one method ``/bench.floor.v1.Floor/Echo`` returns its request bytes: a unary call
  with no work in it. Its pool is to its own empty database, idle.
- ``BENCH_FLOOR_ROLE=gateway``: the gateway's ``main`` (settings, workers, telemetry,
  tracing middleware, uvicorn configuration), given an app factory that adds two routes:
  ``GET /floor/bare`` (a small JSON answer, nothing called) and ``GET /floor/echo``
  (two ``Echo`` calls, one after the other, through ``servicekit.channels.service_channel``:
  the shape of ``GET /user/me``, which calls auth then user).

Started by bench_gateway.py as ``python -m bench_floor`` with ``scripts/`` on the path.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from pydantic_settings import SettingsConfigDict

from servicekit.server import ServiceRegistration
from servicekit.settings import ServiceSettings

ROLE_VARIABLE = "BENCH_FLOOR_ROLE"
ECHO_ADDRESS_VARIABLE = "BENCH_FLOOR_ECHO_ADDRESS"
ECHO_SERVICE = "bench.floor.v1.Floor"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"
# About the size of a GetUserRequest / ValidateSessionRequest on the wire.
ECHO_PAYLOAD = b"\x0a\x24" + b"0" * 36


class FloorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLOOR_", frozen=True, extra="ignore")


async def _echo(request: bytes, context: Any) -> bytes:
    return request


def _add_echo(server: grpc.aio.Server) -> None:
    # Bytes in, bytes out (no serializers): registered through the same registrar as
    # every servicer, so the call gets the same wrapper (span, error mapping, log policy).
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(ECHO_SERVICE, {"Echo": handler}),)
    )


def _build(
    pool: asyncpg.Pool, settings: FloorSettings, resources: AsyncExitStack
) -> Sequence[ServiceRegistration]:
    return [ServiceRegistration(ECHO_SERVICE, _add_echo)]


def run_echo() -> None:
    from servicekit.runner import ServiceDefinition
    from servicekit.runner import main as run_main

    with tempfile.TemporaryDirectory(prefix="bench-floor-") as no_migrations:
        definition = ServiceDefinition[FloorSettings](
            name="floor-echo", migrations=Path(no_migrations), build=_build
        )
        run_main(definition, FloorSettings)


def create_floor_app(settings: Any, clients: Any) -> Any:
    """The gateway's app with the two floor routes (module level: with several gateway
    workers it is pickled to each of them)."""
    from gateway.app import create_app
    from servicekit.channels import service_channel

    app = create_app(settings, clients)
    # Made here, inside the running event loop, like the gateway's own channels.
    channel = service_channel(os.environ[ECHO_ADDRESS_VARIABLE])
    echo = channel.unary_unary(ECHO_METHOD, request_serializer=None, response_deserializer=None)

    @app.get("/floor/bare", include_in_schema=False)
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/floor/echo", include_in_schema=False)
    async def echo_twice() -> dict[str, int]:
        first = await echo(ECHO_PAYLOAD, timeout=10)
        second = await echo(ECHO_PAYLOAD, timeout=10)
        return {"bytes": len(first) + len(second)}

    return app


def run_gateway() -> None:
    """The gateway's own ``main`` (settings, workers, telemetry, uvicorn), its app made
    by :func:`create_floor_app`."""
    from gateway.main import main

    main(app_factory=create_floor_app)


def main() -> int:
    role = os.environ.get(ROLE_VARIABLE, "")
    if role == "echo":
        run_echo()
    elif role == "gateway":
        run_gateway()
    else:
        print(f"bench_floor: set {ROLE_VARIABLE} to 'echo' or 'gateway'", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
