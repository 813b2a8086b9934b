"""The gRPC server every service runs: its servicers, health, reflection, error mapping.

``create_server`` builds and binds the server but does not start it, and returns
the bound port, so tests bind port 0 (grpc/grpc examples/python do the same).

The servicers' handlers are wrapped once, as they are registered, with the span, the
error mapping and the access log of every call (see :mod:`servicekit.calls`); no
interceptors. Health checks and reflection are served as they are (not traced: the
harness and orchestrators poll them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit.calls import CallPolicy, registrar_for

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    # grpc-stubs makes this generic; at run time it is a plain class. Servicers type
    # their context with it.
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class ServiceRegistration:
    """One gRPC service to serve: its full name and how to add its servicer."""

    full_name: str  # e.g. "dummy.v1.DummyService", from the generated DESCRIPTOR
    add_to_server: Callable[[grpc.aio.Server], None]


@dataclass
class Server:
    """A bound, not yet started server, with the handles needed to stop it well."""

    grpc_server: grpc.aio.Server
    port: int
    health: Any  # grpc_health.v1.health.aio.HealthServicer, untyped upstream
    service_names: tuple[str, ...]

    async def start(self) -> None:
        await self.grpc_server.start()
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, refuse new calls, let in-flight calls finish within ``grace``."""
        await self.health.enter_graceful_shutdown()
        await self.grpc_server.stop(grace)


def create_server(
    address: str,
    services: Sequence[ServiceRegistration],
    *,
    tracer_provider: TracerProvider | None = None,
    policy: CallPolicy | None = None,
    max_connection_age_seconds: float | None = None,
    max_connection_age_grace_seconds: float = 10.0,
) -> Server:
    """Build a server with ``services``, health checking and reflection, bound to ``address``.

    ``address`` is ``host:port``; port 0 binds a free port, returned in ``Server.port``.
    Spans go to ``tracer_provider``; None means the process's global provider (a no-op
    until one is installed). ``policy`` says which calls get an access-log line.
    ``max_connection_age_seconds``: each connection is closed gracefully (GOAWAY, its
    calls given ``max_connection_age_grace_seconds`` to finish) once that old, so that
    callers resolve the name again and find replicas added since; None: never.
    """
    # SO_REUSEPORT off: a second server on a taken port must fail, not share the port.
    options: list[tuple[str, int]] = [("grpc.so_reuseport", 0)]
    if max_connection_age_seconds is not None:
        options += [
            ("grpc.max_connection_age_ms", round(max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", round(max_connection_age_grace_seconds * 1000)),
        ]
    grpc_server = grpc.aio.server(options=options)
    registrar = registrar_for(grpc_server, tracer_provider=tracer_provider, policy=policy)
    for service in services:
        service.add_to_server(registrar)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    names = tuple(s.full_name for s in services)
    reflection.enable_server_reflection(
        (
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        grpc_server,
    )
    cause: RuntimeError | None = None
    try:
        port = grpc_server.add_insecure_port(address)
    except RuntimeError as error:  # grpcio's way of saying "bind failed"
        port, cause = 0, error
    if port == 0:
        raise OSError(
            f"could not bind the gRPC server to {address}: is another process using the port?"
        ) from cause
    return Server(grpc_server, port, health_servicer, names)
