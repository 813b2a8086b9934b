"""The serving half of a mock: the gRPC server that answers each call from the script."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from harness._loop import BackgroundLoop
from harness.errors import MockError

if TYPE_CHECKING:
    from google.protobuf.descriptor import ServiceDescriptor

    # grpc-stubs makes the aio context generic; at run time it is a plain class.
    _Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


from collections.abc import Mapping

from harness.mocks.script import (
    Abort,
    Behaviour,
    Call,
    Fails,
    Responds,
    Returns,
    Script,
    Step,
    await_on,
    check_response,
)
from harness.mocks.service import PREFIX, Metadata, Rpc
from harness.mocks.streams import StreamBehaviour, send_stream

__all__ = [
    "MockServer",
    "Running",
]


@dataclass
class Running:
    loop: BackgroundLoop
    server: grpc.aio.Server
    health: Any  # grpc_health.v1.health.aio.HealthServicer, untyped upstream
    host: str
    port: int


def _host_in_address(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``."""
    wildcards = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]", "[::]": "[::1]"}  # noqa: S104
    return wildcards.get(host, _host_in_address(host))


class MockServer:
    """The serving half of a mock: a gRPC server, with health checking, on an event loop
    thread of its own, that answers every call from the mock's :class:`Script`."""

    def __init__(self, service: ServiceDescriptor, rpcs: Mapping[str, Rpc], script: Script) -> None:
        self._service = service
        self._rpcs = rpcs
        self._script = script
        self._running: Running | None = None

    @property
    def service_name(self) -> str:
        return self._service.full_name

    async def _receive(self, rpc: Rpc, raw: bytes, context: _Context) -> tuple[Call[Any], Step]:
        """Parse and record the call; the step that answers it (else abort)."""
        try:
            request = rpc.request_class.FromString(raw)
        except Exception as error:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{PREFIX}: the request is not a valid {rpc.request_class.DESCRIPTOR.full_name}"
                f": {type(error).__name__}",
            )
        metadata = tuple((item[0], item[1]) for item in (context.invocation_metadata() or ()))
        call = Call(rpc.name, rpc.path, request, metadata, datetime.now(UTC), context.peer())
        answer = self._script.take_step(rpc, call)
        step = answer.step
        if step is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, answer.unprogrammed)
        if step.outcome is None:
            outcomes = StreamBehaviour.OUTCOMES if rpc.streaming else Behaviour.OUTCOMES
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{PREFIX}: {self.service_name}.{rpc.name} was programmed with when() but no "
                f"outcome; add {outcomes}",
            )
        return call, step

    async def _answer(self, rpc: Rpc, raw: bytes, context: _Context) -> Message:
        call, step = await self._receive(rpc, raw, context)
        if step.delay:
            await asyncio.sleep(step.delay)
        outcome = step.outcome
        if isinstance(outcome, Fails):
            self._script.record(
                rpc, call, None, outcome.code, breaks_contract=outcome.breaks_contract
            )
            await context.abort(outcome.code, outcome.details, outcome.trailing_metadata)
        if isinstance(outcome, Returns):
            self._script.record(
                rpc, call, outcome.response, grpc.StatusCode.OK, matchers=outcome.matchers
            )
            return outcome.response
        assert isinstance(outcome, Responds), outcome  # when() gives unary RPCs no other
        failure = await self._respond(rpc, outcome, call)
        if isinstance(failure, Message):
            self._script.record(rpc, call, failure, grpc.StatusCode.OK)
            return failure
        await context.abort(*failure)

    async def _respond(
        self, rpc: Rpc, outcome: Responds, call: Call[Any]
    ) -> Message | tuple[grpc.StatusCode, str, Metadata]:
        """Run a responds() function: its response, or the status to abort with."""
        what = f"{self.service_name}.{rpc.name}: {outcome.describe()}"
        try:
            result = outcome.function(call)
            if inspect.isawaitable(result):
                result = await await_on(outcome.loop, result)
        except Abort as abort:
            status = self._script.status_of_abort(abort, rpc, what)
            if status[0] is abort.code:
                self._script.record(
                    rpc, call, None, abort.code, breaks_contract=abort.breaks_contract
                )
            return status
        except Exception as error:
            message = self._script.record_error(f"{what} raised {error!r}")
            return grpc.StatusCode.UNKNOWN, f"{PREFIX}: {message}", ()
        try:
            check_response(rpc, result, what)
        except MockError as error:
            return grpc.StatusCode.UNKNOWN, f"{PREFIX}: {self._script.record_error(str(error))}", ()
        return cast("Message", result)

    async def _unsupported(self, rpc: Rpc, context: _Context) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{PREFIX}: {self.service_name}.{rpc.name} is {rpc.streaming}; harness.mocks "
            "answers unary-unary and server-streaming RPCs only",
        )

    def _handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for rpc in self._rpcs.values():
            handlers[rpc.name] = self._method_handler(rpc)
        return grpc.method_handlers_generic_handler(self.service_name, handlers)

    def _method_handler(self, rpc: Rpc) -> grpc.RpcMethodHandler[Any, Any]:
        # Requests arrive as bytes (no deserializer): one that does not parse gets
        # INVALID_ARGUMENT from _answer rather than grpc's INTERNAL.
        def serialize(message: Message) -> bytes:
            return message.SerializeToString()

        async def unary(raw: bytes, context: _Context) -> Message:
            return await self._answer(rpc, raw, context)

        async def stream(raw: bytes, context: _Context) -> AsyncIterator[Message]:
            call, step = await self._receive(rpc, raw, context)
            async for message in send_stream(self._script, rpc, step, call, context):
                yield message

        async def unsupported(request: object, context: _Context) -> None:
            await self._unsupported(rpc, context)

        # grpc-stubs types behaviours with the sync context; an aio server passes its own.
        behaviour: Any = unary
        refusal: Any = unsupported
        if rpc.streaming is None:
            return grpc.unary_unary_rpc_method_handler(behaviour, response_serializer=serialize)
        if rpc.descriptor.client_streaming and rpc.descriptor.server_streaming:
            return grpc.stream_stream_rpc_method_handler(refusal)
        if rpc.descriptor.client_streaming:
            return grpc.stream_unary_rpc_method_handler(refusal)
        streamer: Any = stream
        return grpc.unary_stream_rpc_method_handler(streamer, response_serializer=serialize)

    @property
    def address(self) -> str:
        """``host:port`` the server is bound to (as given to ``serve``); MockError if stopped."""
        running = self._running
        if running is None:
            raise MockError(
                f"the {self.service_name} mock is not serving; call start() (or astart()) first"
            )
        return f"{_host_in_address(running.host)}:{running.port}"

    @property
    def port(self) -> int:
        """The bound port (the one chosen when ``serve`` was given port 0)."""
        running = self._running
        if running is None:
            raise MockError(
                f"the {self.service_name} mock is not serving; call start() (or astart()) first"
            )
        return running.port

    def start(self, host: str, port: int) -> None:
        """Serve on ``host:port`` (0: a free port) on a thread of its own; returns once
        listening."""
        if self._running is not None:
            raise MockError(f"the {self.service_name} mock is already serving at {self.address}")
        loop = BackgroundLoop(name=f"grpc-mock-{self._service.name}")
        loop.__enter__()
        try:
            self._running = loop.run(self._start_server(loop, host, port), timeout=30)
        except BaseException:
            loop.close()
            raise

    def close(self, grace: float | None = None) -> None:
        """Report NOT_SERVING and stop; calls in flight get ``grace`` seconds. Idempotent."""
        running, self._running = self._running, None
        if running is None:
            return
        try:
            running.loop.run(self._stop_server(running, grace), timeout=(grace or 0) + 30)
        finally:
            running.loop.close()

    @property
    def is_serving(self) -> bool:
        return self._running is not None

    def client_target(self) -> str:
        """Where a client on this machine reaches the server (a wildcard host is reached on
        loopback)."""
        running = self._running
        assert running is not None, "start() first"
        return f"{_client_host(running.host)}:{running.port}"

    async def _start_server(self, loop: BackgroundLoop, host: str, port: int) -> Running:
        # SO_REUSEPORT off: a port another process holds must fail here, not be shared.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((self._handler(),))
        health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        address = f"{_host_in_address(host)}:{port}"
        cause: RuntimeError | None = None
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as error:  # grpcio's way of saying "bind failed"
            bound, cause = 0, error
        if bound == 0:
            await server.stop(None)
            raise MockError(
                f"could not serve the {self.service_name} mock on {address}: is the port "
                "taken, or the host not an address of this machine? Use port 0 for a free one"
            ) from cause
        await server.start()
        for name in ("", self.service_name):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return Running(loop, server, health_servicer, host, bound)

    @staticmethod
    async def _stop_server(running: Running, grace: float | None) -> None:
        await running.health.enter_graceful_shutdown()
        await running.server.stop(grace)
