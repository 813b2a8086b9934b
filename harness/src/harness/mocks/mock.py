"""The mock as tests use it: :class:`GrpcMock` (program, start, verify) and :class:`GrpcMocks`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Self, TypeAlias, TypeVar, cast, overload

import grpc
from google.protobuf.message import Message

from harness.errors import MockError, MockVerificationError

if TYPE_CHECKING:
    from types import TracebackType

    from google.protobuf.descriptor import ServiceDescriptor

    # grpc-stubs makes the aio context generic; at run time it is a plain class.
    _Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


from harness.mocks.script import Behaviour, Call, Script
from harness.mocks.service import Rpc, RpcRef, StubProxy, rpcs_of, service_of_stub
from harness.mocks.serving import MockServer
from harness.mocks.streams import StreamBehaviour
from harness.mocks.verification import Verification

__all__ = [
    "GrpcMock",
    "GrpcMocks",
]


Stub = TypeVar("Stub")
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

# What a selector lambda gives: an RPC of the AsyncStub, unary or server-streaming.
_Multi: TypeAlias = (
    grpc.aio.UnaryUnaryMultiCallable[Req, Resp] | grpc.aio.UnaryStreamMultiCallable[Req, Resp]
)


class GrpcMock(Generic[Stub]):
    """A programmable stand-in for one gRPC service, built from its descriptor.

    ``Stub`` is the service's generated *AsyncStub* (type checking only): ``GrpcMock.of``
    infers it from the stub class; with the constructor, annotate the variable, e.g.
    ``mock: GrpcMock[UserServiceAsyncStub] = GrpcMock(descriptor)``.

    Every RPC of the service gets a handler; unary-unary and server-streaming RPCs can be
    programmed (``when()`` gives a :class:`Behaviour` or a :class:`StreamBehaviour`).
    Client- and bidirectional-streaming RPCs cannot (a :class:`MockError` at ``when()``, a
    type error under mypy): calls to them are answered UNIMPLEMENTED and not recorded.

    ``fails()`` and :class:`Abort` take the error codes each RPC declares in its
    contract's ``(kit.v1.may_return)`` option (:meth:`declared_codes`), and DEADLINE_EXCEEDED
    and CANCELLED, which the caller's side makes; ``breaks_contract=True`` lets a test
    give any other. An RPC without the option may fail with any code but UNKNOWN and
    INTERNAL. OK is never a failure.
    """

    def __init__(self, service: ServiceDescriptor) -> None:
        self._service = service
        self._rpcs = rpcs_of(service)
        self._proxy = StubProxy(service.name, self._rpcs)
        self._script = Script(service.full_name)
        self._server = MockServer(service, self._rpcs, self._script)

    @classmethod
    def of(cls, stub: Callable[[grpc.aio.Channel], Stub]) -> GrpcMock[Stub]:
        """A mock of the service of a generated stub class, e.g. ``UserServiceStub``.

        Typed as ``GrpcMock[UserServiceAsyncStub]``: mypy picks the stub's overload that
        takes a ``grpc.aio.Channel``. At run time the stub is built on a probe channel to
        learn the service's name, whose descriptor is then taken from the default pool.
        """
        return cls(service_of_stub(stub))

    def __repr__(self) -> str:
        state = f"serving at {self.address}" if self._server.is_serving else "not serving"
        return f"<GrpcMock {self.service_name} {state}>"

    # -- the service ----------------------------------------------------------------------

    @property
    def service_name(self) -> str:
        """The service's full name, e.g. ``user.v1.UserService`` (also its health name)."""
        return self._service.full_name

    @property
    def rpc_names(self) -> tuple[str, ...]:
        return tuple(self._rpcs)

    def declared_codes(
        self, rpc: Callable[[Stub], _Multi[Req, Resp]]
    ) -> frozenset[grpc.StatusCode] | None:
        """The error codes the selected RPC declares in its contract's
        ``(kit.v1.may_return)`` option; None when it has no such option."""
        return self._select(rpc, programmable=False).declared

    def _select(self, selector: Callable[[Stub], object], *, programmable: bool = True) -> Rpc:
        example = f"`lambda stub: stub.{next(iter(self._rpcs), 'Rpc')}`"
        if not callable(selector):
            raise MockError(f"select an RPC with a lambda, e.g. {example}; got {selector!r}")
        selected = selector(cast("Stub", self._proxy))
        if not isinstance(selected, RpcRef):
            raise MockError(
                f"the selector must return an RPC of the stub, e.g. {example}; it returned "
                f"{selected!r}"
            )
        rpc = selected.rpc
        if programmable and rpc.descriptor.client_streaming:
            raise MockError(
                f"{self.service_name}.{rpc.name} is {rpc.streaming}; harness.mocks programs "
                "and records unary-unary and server-streaming RPCs only"
            )
        return rpc

    # -- programming ------------------------------------------------------------------------

    @overload
    def when(
        self, rpc: Callable[[Stub], grpc.aio.UnaryUnaryMultiCallable[Req, Resp]]
    ) -> Behaviour[Req, Resp]: ...

    @overload
    def when(
        self, rpc: Callable[[Stub], grpc.aio.UnaryStreamMultiCallable[Req, Resp]]
    ) -> StreamBehaviour[Req, Resp]: ...

    def when(
        self, rpc: Callable[[Stub], _Multi[Req, Resp]]
    ) -> Behaviour[Req, Resp] | StreamBehaviour[Req, Resp]:
        """Program an RPC, replacing what it was programmed with before.

        ``rpc`` selects it from the stub: ``mock.when(lambda stub: stub.GetUser)``. A
        unary RPC gets a :class:`Behaviour` (``returns``, ``responds``, ``fails``), a
        server-streaming one a :class:`StreamBehaviour` (``streams``, ``fails``).
        """
        selected = self._select(rpc)
        steps = self._script.program(selected)
        if selected.streaming:
            return StreamBehaviour(self._script, selected, steps)
        return Behaviour(self._script, selected, steps)

    def given(self, state: str, **params: str) -> Self:
        """Name a provider state this test assumes, e.g. ``mock.given("a user exists",
        id=user_id)``: recorded with every answer that follows (consumer-driven contracts,
        ``--harness-interactions``); the provider's verification sets it up through the
        state handler of that name before replaying them. ``params`` are strings; a value
        the handler makes anew (an id, a token) is replaced by the real one on replay."""
        if not isinstance(state, str) or not state.strip():
            raise MockError(f"given() takes the name of a provider state, got {state!r}")
        bad = {key: value for key, value in params.items() if not isinstance(value, str)}
        if bad:
            raise MockError(f"given({state!r}): parameters must be strings, got {bad!r}")
        self._script.given(state, dict(params))
        return self

    def reset(self) -> None:
        """Forget every programmed behaviour, every recorded call, every state given and
        every error."""
        self._script.reset()

    # -- recording and verification -------------------------------------------------------

    def calls(self, rpc: Callable[[Stub], _Multi[Req, Resp]]) -> list[Call[Req]]:
        """The calls the selected RPC received, oldest first."""
        return cast("list[Call[Req]]", self._script.calls_of(self._select(rpc)))

    def all_calls(self) -> list[Call[Message]]:
        """Every call the mock received, oldest first."""
        return self._script.all_calls()

    def verify(self, rpc: Callable[[Stub], _Multi[Req, Resp]]) -> Verification[Req]:
        """Expectations on the selected RPC's calls: ``mock.verify(...).called_once_with(r)``."""
        return Verification(self._script, self._select(rpc))

    @property
    def errors(self) -> list[str]:
        """Mistakes found while answering (a ``responds()`` function raised, returned the
        wrong type or aborted with a code not allowed); each call got UNKNOWN."""
        return self._script.errors

    def assert_no_errors(self) -> None:
        """Raise :class:`MockVerificationError` listing :attr:`errors`, if any."""
        __tracebackhide__ = True
        errors = self.errors
        if errors:
            listed = "\n".join(f"  - {error}" for error in errors)
            raise MockVerificationError(
                f"{self.service_name} mock: errors while answering:\n{listed}"
            )

    # -- serving ----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` the server is bound to (as given to ``start``); MockError if stopped."""
        return self._server.address

    @property
    def port(self) -> int:
        """The bound port (the one chosen when ``start`` was given port 0)."""
        return self._server.port

    async def astart(self, bind_host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``bind_host:port`` (0: a free port) with health checking; return
        ``host:port``.

        ``bind_host`` decides who can reach it: 127.0.0.1 for this machine, ``0.0.0.0`` or a
        Docker bridge address for containers. Health answers SERVING for ``""`` and for
        :attr:`service_name`. The server runs on a thread of its own; see the module doc.
        """
        return await asyncio.to_thread(self.start, bind_host, port)

    async def aclose(self, grace: float | None = None) -> None:
        """Report NOT_SERVING and stop; calls in flight get ``grace`` seconds. Idempotent."""
        await asyncio.to_thread(self.close, grace)

    def start(self, bind_host: str = "127.0.0.1", port: int = 0) -> str:
        """:meth:`astart` for synchronous code (fixtures, scripts): blocks until listening."""
        self._server.start(bind_host, port)
        return self.address

    def close(self, grace: float | None = None) -> None:
        """:meth:`aclose` for synchronous code. Idempotent."""
        self._server.close(grace)

    @contextlib.contextmanager
    def serving(self, bind_host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """``with mock.serving(...) as address:`` start, give the address, close."""
        address = self.start(bind_host, port)
        try:
            yield address
        finally:
            self.close()

    @contextlib.asynccontextmanager
    async def channel(self) -> AsyncIterator[grpc.aio.Channel]:
        """A client channel to the mock, on the caller's loop.

        Serves on 127.0.0.1, port 0, for the block when the mock is not serving yet.
        """
        started = not self._server.is_serving
        if started:
            await self.astart()
        try:
            async with grpc.aio.insecure_channel(self._server.client_target()) as channel:
                yield channel
        finally:
            if started:
                await self.aclose()


class GrpcMocks:
    """Makes mocks and closes them all: what a fixture wraps.

    ::

        with GrpcMocks() as mocks:
            users = mocks.of(user_pb2_grpc.UserServiceStub)
            ...
    """

    def __init__(self) -> None:
        self._mocks: list[GrpcMock[Any]] = []

    def of(self, stub: Callable[[grpc.aio.Channel], Stub]) -> GrpcMock[Stub]:
        """:meth:`GrpcMock.of`, closed with the others."""
        mock = GrpcMock.of(stub)
        self._mocks.append(mock)
        return mock

    def add(self, mock: GrpcMock[Stub]) -> GrpcMock[Stub]:
        """Take a mock built otherwise (e.g. from a descriptor) to close it with the others."""
        self._mocks.append(mock)
        return mock

    def close(self) -> None:
        """Stop every mock still serving."""
        for mock in self._mocks:
            mock.close()

    def assert_no_errors(self) -> None:
        """:meth:`GrpcMock.assert_no_errors` of every mock, one message for all."""
        __tracebackhide__ = True
        problems = []
        for mock in self._mocks:
            try:
                mock.assert_no_errors()
            except MockVerificationError as error:
                problems.append(str(error))
        if problems:
            raise MockVerificationError("\n".join(problems))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
