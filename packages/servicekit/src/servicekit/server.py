"""The gRPC server every service runs: its servicers, health, reflection, error mapping.

``create_server`` builds and binds the server but does not start it, and returns
the bound port, so tests bind port 0 (grpc/grpc examples/python do the same).

Interceptors, outermost first: tracing (a span per RPC), the access log (inside the
span, so its line carries the trace id), then the error mapping, so the span and the
log line see the status the mapping answered (see :mod:`servicekit.telemetry`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace

from servicekit.errors import ServiceError, status_of
from servicekit.telemetry import server_interceptors

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    # grpc-stubs makes these generic; at run time they are plain classes.
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    _ServerInterceptor: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor


@dataclass(frozen=True)
class ServiceRegistration:
    """One gRPC service to serve: its full name and how to add its servicer."""

    full_name: str  # e.g. "dummy.v1.DummyService", from the generated DESCRIPTOR
    add_to_server: Callable[[grpc.aio.Server], None]


class ErrorMappingInterceptor(_ServerInterceptor):
    """The one place where failures become gRPC status (STYLE.md, errors).

    A :class:`ServiceError` becomes its kind's status with its message; any other
    exception is a bug: logged with its traceback, answered INTERNAL without details.
    """

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        # grpc-stubs types handlers with the sync context; on an aio server they get the aio one.
        inner: Callable[[Any, Any], Awaitable[Any]] = handler.unary_unary
        deserialize: Callable[[bytes], Any] | None = handler.request_deserializer
        method = handler_call_details.method

        async def behavior(raw_request: bytes, context: Context) -> Any:
            # Deserialized here rather than by grpc, which would answer a request that
            # does not parse (bad wire format, invalid UTF-8 in a string) with INTERNAL.
            try:
                request = deserialize(raw_request) if deserialize else raw_request
            except Exception as error:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the request is not a valid message for {method}: {type(error).__name__}",
                )
            try:
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise  # the handler already chose a status
            except ServiceError as error:
                code, details = status_of(error)
                await context.abort(code, details)
            except Exception as error:
                logger.exception("unexpected error in %s", method)
                # The client only learns "internal error"; the trace keeps the cause.
                trace.get_current_span().record_exception(error)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=None,  # raw bytes: see behavior
            response_serializer=handler.response_serializer,
        )


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
) -> Server:
    """Build a server with ``services``, health checking and reflection, bound to ``address``.

    ``address`` is ``host:port``; port 0 binds a free port, returned in ``Server.port``.
    Spans go to ``tracer_provider``; None means the process's global provider (a no-op
    until one is installed).
    """
    # Order matters: see the module docstring.
    interceptors = [*server_interceptors(tracer_provider), ErrorMappingInterceptor()]
    # SO_REUSEPORT off: a second server on a taken port must fail, not share the port.
    grpc_server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
    for service in services:
        service.add_to_server(grpc_server)
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
