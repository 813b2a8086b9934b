"""Generated gRPC mocks: a stand-in for any service of ``contracts/``, built from its descriptor.

::

    users = GrpcMock.of(user_pb2_grpc.UserServiceStub)  # GrpcMock[UserServiceAsyncStub]
    users.when(lambda stub: stub.GetUser).returns(user_pb2.GetUserResponse(user=...))
    users.when(lambda stub: stub.CreateUser).fails(grpc.StatusCode.ALREADY_EXISTS, "taken")
    async with users.channel() as channel:  # an in-process server on 127.0.0.1, port 0
        ...                                  # the code under test calls through `channel`
    users.verify(lambda stub: stub.GetUser).called_once_with(user_pb2.GetUserRequest(id=...))

RPCs are selected with a lambda over the service's generated *AsyncStub*: under
``mypy --strict`` an RPC that does not exist is an attribute error and the response
must be the RPC's output type; at run time a proxy stands in for the stub and raises
:class:`UnknownRpcError`, listing the service's RPCs, at once.

The server (``serve``/``serving``/``channel``) runs on an event loop thread of the mock's
own, so it answers while the test blocks (a synchronous client, ``subprocess.run``, a
synchronous fixture waiting on a container) and whatever the loop scope of the test.
Async ``responds`` functions run on the loop that programmed them, so they may await
that loop's objects.

Errors (in :mod:`harness.errors`): :class:`MockError` when the mock is programmed or
used wrongly (raised at once), :class:`UnknownRpcError` for an RPC the service lacks,
:class:`MockVerificationError` (an AssertionError) when a ``verify()`` expectation fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Self, TypeAlias, TypeVar, cast

import grpc
from google.protobuf import descriptor_pool, message_factory, text_format
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from harness._loop import BackgroundLoop
from harness.errors import MockError, MockVerificationError, UnknownRpcError

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

    # grpc-stubs makes the aio context generic; at run time it is a plain class.
    _Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

__all__ = [
    "NEVER_PROMISED",
    "Abort",
    "Behaviour",
    "Call",
    "GrpcMock",
    "GrpcMocks",
    "Metadata",
    "Verification",
    "contract_status_block",
    "contract_status_codes",
]

Stub = TypeVar("Stub")
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

Metadata: TypeAlias = tuple[tuple[str, str | bytes], ...]
"""Invocation or trailing metadata: (key, value) pairs in order; ``-bin`` keys have bytes."""

NEVER_PROMISED = frozenset({grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
"""Refused by ``fails()`` unless a contract lists them: OK is not a failure, and every
contract of the kit says "No request, however malformed, gets UNKNOWN or INTERNAL"."""

_PREFIX = "harness.mocks"


class Abort(Exception):
    """Raise from a ``responds()`` function to answer an error status instead of a response.

    The status is checked against the mock's allowed codes, as ``fails()`` is.
    """

    def __init__(
        self, code: grpc.StatusCode, details: str = "", *, trailing_metadata: Metadata = ()
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


@dataclass(frozen=True)
class Call(Generic[Req]):
    """One call the mock received: its request (deserialized), metadata, time and peer."""

    rpc: str  # the RPC's name, e.g. "GetUser"
    method: str  # the full method path, e.g. "/user.v1.UserService/GetUser"
    request: Req
    metadata: Metadata
    at: datetime  # when it arrived (UTC), before any programmed delay
    peer: str

    def metadata_value(self, key: str) -> str | bytes | None:
        """The first value of the invocation metadata ``key`` (lower case), or None."""
        return next((value for name, value in self.metadata if name == key), None)


# ---------------------------------------------------------------------------------------
# The service model, from the descriptor


@dataclass(frozen=True)
class _Rpc:
    name: str
    path: str
    descriptor: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]

    @property
    def streaming(self) -> str | None:
        """None for unary-unary, otherwise which side streams (for messages)."""
        client, server = self.descriptor.client_streaming, self.descriptor.server_streaming
        if client and server:
            return "bidirectional-streaming"
        if client:
            return "client-streaming"
        if server:
            return "server-streaming"
        return None


def _rpcs_of(service: ServiceDescriptor) -> dict[str, _Rpc]:
    return {
        method.name: _Rpc(
            name=method.name,
            path=f"/{service.full_name}/{method.name}",
            descriptor=method,
            request_class=message_factory.GetMessageClass(method.input_type),
            response_class=message_factory.GetMessageClass(method.output_type),
        )
        for method in service.methods
    }


class _RpcRef:
    """What the stub proxy gives for an RPC name; only the mock reads it."""

    __slots__ = ("rpc",)

    def __init__(self, rpc: _Rpc) -> None:
        self.rpc = rpc

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise MockError(
            f"select the RPC, do not call it: `lambda stub: stub.{self.rpc.name}`, "
            f"not `lambda stub: stub.{self.rpc.name}(...)`"
        )


class _StubProxy:
    """Stands in for the generated stub inside selector lambdas."""

    __slots__ = ("_rpcs", "_service")

    def __init__(self, service: str, rpcs: dict[str, _Rpc]) -> None:
        self._service = service
        self._rpcs = rpcs

    def __getattr__(self, name: str) -> _RpcRef:
        rpc = self._rpcs.get(name)
        if rpc is None:
            known = ", ".join(sorted(self._rpcs)) or "none"
            raise UnknownRpcError(
                f"{self._service} has no RPC {name!r}; its RPCs: {known}", name=name, obj=self
            )
        return _RpcRef(rpc)


class _ProbeChannel:
    """Passed to a generated stub's constructor to learn the method paths it calls."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def _record(self, path: str, *args: object, **kwargs: object) -> None:
        self.paths.append(path)

    unary_unary = unary_stream = stream_unary = stream_stream = _record


def _service_of_stub(stub: Callable[[grpc.aio.Channel], object]) -> ServiceDescriptor:
    probe = _ProbeChannel()
    try:
        stub(cast("grpc.aio.Channel", probe))
    except Exception as error:
        raise MockError(
            f"{stub!r} is not a generated gRPC stub class (calling it with a channel raised "
            f"{error!r}); pass e.g. user_pb2_grpc.UserServiceStub"
        ) from error
    names = {path.split("/")[1] for path in probe.paths if path.count("/") == 2}
    if len(names) != 1:
        raise MockError(
            f"{stub!r} does not look like a generated stub of one service (method paths: "
            f"{probe.paths}); build the mock from the descriptor instead: "
            "GrpcMock(xxx_pb2.DESCRIPTOR.services_by_name[...])"
        )
    (name,) = names
    try:
        return descriptor_pool.Default().FindServiceByName(name)
    except KeyError:
        raise MockError(
            f"service {name} is not in the default descriptor pool; import its _pb2 module, "
            "or build the mock from its descriptor: GrpcMock(descriptor)"
        ) from None


# ---------------------------------------------------------------------------------------
# Contract safety


_CODES_HEADER = re.compile(r"^\s*//\s*Status codes every RPC may return:\s*$")
_BLOCK_LINE = re.compile(r"^\s*//\s{2,}(\S.*)$")


def contract_status_block(proto: Path) -> dict[grpc.StatusCode, str]:
    """Each code a contract lists under "Status codes every RPC may return:", with its meaning.

    Our ``.proto`` files open with that block (one ``//   CODE  meaning`` line per code,
    deeper-indented lines continuing the meaning); the generated modules carry no
    comments, so this reads the ``.proto`` file itself. This is the one reader of the
    block: :func:`contract_status_codes` and the contract fuzzer's per-RPC table
    (``contracts/fuzzing.py``) are built on it. Raises :class:`MockError` when the file
    has no such block or the block lists no code.
    """
    lines = proto.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if _CODES_HEADER.match(line)), None)
    if start is None:
        raise MockError(
            f"{proto} has no 'Status codes every RPC may return:' comment block; pass "
            "allowed_codes explicitly"
        )
    block: dict[grpc.StatusCode, str] = {}
    column: int | None = None  # where the codes start; deeper lines continue an entry
    current: grpc.StatusCode | None = None
    for line in lines[start + 1 :]:
        entry = _BLOCK_LINE.match(line)
        if entry is None:
            break  # the block ends at the first line that is not an indented comment
        if column is None:
            column = entry.start(1)
        name, _, meaning = entry.group(1).partition(" ")
        if entry.start(1) == column and name in grpc.StatusCode.__members__:
            current = grpc.StatusCode[name]
            block[current] = meaning.strip()
        elif current is not None and entry.start(1) > column:
            block[current] = f"{block[current]} {entry.group(1).strip()}"
    if not block.keys() - {grpc.StatusCode.OK}:
        raise MockError(f"{proto}: the status code block lists no code")
    return block


def contract_status_codes(proto: Path) -> frozenset[grpc.StatusCode]:
    """The codes a contract lists under "Status codes every RPC may return:", OK removed.

    Pass the result as ``allowed_codes`` to refuse, in ``fails()``, a code the contract
    does not list. Raises :class:`MockError` when the file has no such block
    (:func:`contract_status_block`).
    """
    return frozenset(contract_status_block(proto)) - {grpc.StatusCode.OK}


_METADATA_KEY = re.compile(r"^[0-9a-z_.-]+$")


def _check_metadata(metadata: Metadata, what: str) -> Metadata:
    checked = tuple(metadata)
    for pair in checked:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise MockError(f"{what}: expected (key, value) pairs, got {pair!r}")
        key, value = pair
        if not isinstance(key, str) or not _METADATA_KEY.match(key) or key.startswith("grpc-"):
            raise MockError(
                f"{what}: key {key!r} is not a valid metadata key (lower-case letters, "
                "digits, '-', '_', '.'; not 'grpc-...')"
            )
        binary = key.endswith("-bin")
        if binary and not isinstance(value, bytes):
            raise MockError(f"{what}: {key!r} ends with -bin, so its value must be bytes")
        if not binary and not isinstance(value, str):
            raise MockError(f"{what}: {key!r} needs a str value (only -bin keys take bytes)")
    return checked


# ---------------------------------------------------------------------------------------
# Programming


@dataclass(frozen=True)
class _Returns:
    response: Message

    def describe(self) -> str:
        return f"returns({self.response.DESCRIPTOR.name})"


@dataclass(frozen=True)
class _Responds:
    function: Callable[[Call[Any]], Any]
    loop: asyncio.AbstractEventLoop | None  # where an async function must run

    def describe(self) -> str:
        return f"responds({getattr(self.function, '__qualname__', repr(self.function))})"


@dataclass(frozen=True)
class _Fails:
    code: grpc.StatusCode
    details: str
    trailing_metadata: Metadata

    def describe(self) -> str:
        return f"fails({self.code.name}, {self.details!r})"


_Outcome: TypeAlias = _Returns | _Responds | _Fails


@dataclass
class _Step:
    outcome: _Outcome | None = None
    delay: float = 0.0
    times: int | None = None  # None: once if another step follows, else every call
    used: int = 0

    def describe(self) -> str:
        parts = [self.outcome.describe() if self.outcome else "no outcome"]
        if self.delay:
            parts.append(f"delays({self.delay})")
        if self.times is not None:
            parts.append(f"times({self.times})")
        return ".".join(parts)


class Behaviour(Generic[Req, Resp]):
    """How one RPC answers, from ``mock.when(...)``; every method returns the behaviour.

    A behaviour is a sequence of steps, each with one outcome (``returns``, ``responds``
    or ``fails``), an optional ``delays`` and an optional ``times``; ``then()`` starts the
    next step. Calls take the steps in order: a step answers ``times(n)`` calls, or one
    call when another step follows it, or every remaining call when it is the last one.
    Calls after the last step is used up get UNIMPLEMENTED saying so.
    """

    def __init__(self, mock: GrpcMock[Any], rpc: _Rpc, steps: list[_Step]) -> None:
        self._mock = mock
        self._rpc = rpc
        self._steps = steps

    def __repr__(self) -> str:
        steps = ".then().".join(step.describe() for step in self._steps)
        return f"<Behaviour {self._rpc.name}: {steps}>"

    def returns(self, response: Resp) -> Self:
        """Answer ``response`` (copied now, so later changes to it do not leak in)."""
        _check_response(self._rpc, response, "returns()")
        copy = self._rpc.response_class()
        copy.MergeFromString(response.SerializeToString())
        return self._set_outcome(_Returns(copy))

    def responds(self, function: Callable[[Call[Req]], Resp | Awaitable[Resp]]) -> Self:
        """Answer what ``function(call)`` returns (sync or async); it may raise :class:`Abort`.

        An async function runs on the event loop that called ``responds()`` while that
        loop runs (so it may await objects of the test's loop), else on the mock's loop.
        Anything else it raises, or a response of the wrong type, is answered UNKNOWN
        and kept in ``mock.errors``.
        """
        if not callable(function):
            raise MockError(f"responds() takes a function of the call, got {function!r}")
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        return self._set_outcome(_Responds(cast("Callable[[Call[Any]], Any]", function), loop))

    def fails(
        self, code: grpc.StatusCode, details: str = "", *, trailing_metadata: Metadata = ()
    ) -> Self:
        """Answer the error status ``code`` with ``details`` (and trailing metadata)."""
        self._mock._check_code(code, self._rpc, "fails()")
        if not isinstance(details, str):
            raise MockError(f"fails(): details must be a str, got {details!r}")
        checked = _check_metadata(trailing_metadata, "fails(trailing_metadata=...)")
        return self._set_outcome(_Fails(code, details, checked))

    def delays(self, seconds: float) -> Self:
        """Wait ``seconds`` before answering (with this step's outcome)."""
        if not isinstance(seconds, int | float) or seconds < 0:
            raise MockError(f"delays() takes a number of seconds >= 0, got {seconds!r}")
        with self._mock._lock:
            self._steps[-1].delay = float(seconds)
        return self

    def times(self, count: int) -> Self:
        """Let this step answer ``count`` calls; the next step (or UNIMPLEMENTED) follows."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise MockError(f"times() takes a count >= 1, got {count!r}")
        with self._mock._lock:
            self._steps[-1].times = count
        return self

    def then(self) -> Self:
        """Start the next step: what the calls after this step's ones get."""
        with self._mock._lock:
            if self._steps[-1].outcome is None:
                raise MockError(
                    f"{self._rpc.name}: then() after a step with no outcome; give it "
                    ".returns(), .responds() or .fails() first"
                )
            self._steps.append(_Step())
        return self

    def _set_outcome(self, outcome: _Outcome) -> Self:
        with self._mock._lock:
            step = self._steps[-1]
            if step.outcome is not None:
                raise MockError(
                    f"{self._rpc.name}: this step already {step.outcome.describe()}; use "
                    ".then() to program what the next call gets"
                )
            step.outcome = outcome
        return self


def _check_response(rpc: _Rpc, response: object, what: str) -> None:
    expected = rpc.descriptor.output_type.full_name
    actual = response.DESCRIPTOR.full_name if isinstance(response, Message) else None
    if actual != expected:
        got = actual or type(response).__name__
        raise MockError(f"{what}: {rpc.name} answers {expected}, not {got}")


# ---------------------------------------------------------------------------------------
# Verification


def _format_message(message: Message, indent: str) -> str:
    body = text_format.MessageToString(message, as_utf8=True).rstrip("\n")
    name = message.DESCRIPTOR.name
    if not body:
        return f"{indent}{name} {{}}"
    inner = "\n".join(f"{indent}  {line}" for line in body.splitlines())
    return f"{indent}{name} {{\n{inner}\n{indent}}}"


def _format_calls(calls: Sequence[Call[Any]], indent: str = "  ") -> str:
    if not calls:
        return f"{indent}(none)"
    blocks = []
    for number, call in enumerate(calls, start=1):
        metadata = ", ".join(f"{key}={value!r}" for key, value in call.metadata) or "none"
        blocks.append(
            f"{indent}#{number} at {call.at.isoformat(timespec='microseconds')} from "
            f"{call.peer}; metadata: {metadata}\n{_format_message(call.request, indent + '    ')}"
        )
    return "\n".join(blocks)


def _count(count: int) -> str:
    return f"{count} call" if count == 1 else f"{count} calls"


class Verification(Generic[Req]):
    """Expectations on the calls one RPC received, from ``mock.verify(...)``.

    A failed expectation raises :class:`MockVerificationError` with every call received.
    """

    def __init__(self, mock: GrpcMock[Any], rpc: _Rpc) -> None:
        self._mock = mock
        self._rpc = rpc

    def _calls(self) -> list[Call[Req]]:
        return cast("list[Call[Req]]", self._mock._calls_of(self._rpc))

    def _fail(self, expectation: str, calls: list[Call[Req]]) -> MockVerificationError:
        text = (
            f"{self._mock.service_name}.{self._rpc.name}: expected {expectation}\n"
            f"but received {_count(len(calls))}:\n{_format_calls(calls)}"
        )
        others = self._mock._other_calls_summary(self._rpc)
        if others:
            text += f"\nother calls received by the mock: {others}"
        return MockVerificationError(text)

    def called_times(self, count: int) -> list[Call[Req]]:
        """Exactly ``count`` calls; returns them."""
        calls = self._calls()
        if len(calls) != count:
            raise self._fail(_count(count), calls)
        return calls

    def called_once(self) -> Call[Req]:
        """Exactly one call, whatever its request; returns it."""
        return self.called_times(1)[0]

    def called_once_with(self, request: Req) -> Call[Req]:
        """Exactly one call, with a request equal to ``request``; returns it."""
        self._check_request(request)
        calls = self._calls()
        if len(calls) != 1 or calls[0].request != request:
            raise self._fail(f"1 call with\n{_format_message(request, '  ')}", calls)
        return calls[0]

    def called_with(self, request: Req) -> list[Call[Req]]:
        """At least one call with a request equal to ``request``; returns those calls."""
        self._check_request(request)
        calls = self._calls()
        matching = [call for call in calls if call.request == request]
        if not matching:
            raise self._fail(f"a call with\n{_format_message(request, '  ')}", calls)
        return matching

    def never_called(self) -> None:
        """No call at all."""
        calls = self._calls()
        if calls:
            raise self._fail("no call", calls)

    def _check_request(self, request: object) -> None:
        expected = self._rpc.descriptor.input_type.full_name
        actual = request.DESCRIPTOR.full_name if isinstance(request, Message) else None
        if actual != expected:
            got = actual or type(request).__name__
            raise MockError(f"{self._rpc.name} takes {expected}, not {got}")


# ---------------------------------------------------------------------------------------
# The mock


@dataclass
class _Running:
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


@dataclass
class _Answer:
    """What the handler decided, computed under the lock and then acted on."""

    step: _Step | None
    unprogrammed: str = ""


class GrpcMock(Generic[Stub]):
    """A programmable stand-in for one gRPC service, built from its descriptor.

    ``Stub`` is the service's generated *AsyncStub* (type checking only): ``GrpcMock.of``
    infers it from the stub class; with the constructor, annotate the variable, e.g.
    ``mock: GrpcMock[UserServiceAsyncStub] = GrpcMock(descriptor)``.

    Every RPC of the service gets a handler; unary-unary RPCs can be programmed.
    Streaming RPCs cannot (a :class:`MockError` at ``when()``, a type error under mypy):
    calls to them are answered UNIMPLEMENTED and not recorded.

    ``allowed_codes``: the error codes ``fails()`` and :class:`Abort` may use, e.g.
    :func:`contract_status_codes` of the service's ``.proto``; default every code but
    :data:`NEVER_PROMISED`. OK is never a failure.
    """

    def __init__(
        self,
        service: ServiceDescriptor,
        *,
        allowed_codes: Iterable[grpc.StatusCode] | None = None,
    ) -> None:
        self._service = service
        self._rpcs = _rpcs_of(service)
        self._proxy = _StubProxy(service.name, self._rpcs)
        if allowed_codes is None:
            self._allowed = frozenset(grpc.StatusCode) - NEVER_PROMISED
        else:
            self._allowed = frozenset(allowed_codes) - {grpc.StatusCode.OK}
            if not self._allowed:
                raise MockError("allowed_codes lists no error code")
        self._lock = threading.Lock()
        self._programs: dict[str, list[_Step]] = {}
        self._calls: list[Call[Any]] = []
        self._errors: list[str] = []
        self._running: _Running | None = None

    @classmethod
    def of(
        cls,
        stub: Callable[[grpc.aio.Channel], Stub],
        *,
        allowed_codes: Iterable[grpc.StatusCode] | None = None,
    ) -> GrpcMock[Stub]:
        """A mock of the service of a generated stub class, e.g. ``UserServiceStub``.

        Typed as ``GrpcMock[UserServiceAsyncStub]``: mypy picks the stub's overload that
        takes a ``grpc.aio.Channel``. At run time the stub is built on a probe channel to
        learn the service's name, whose descriptor is then taken from the default pool.
        """
        return cls(_service_of_stub(stub), allowed_codes=allowed_codes)

    def __repr__(self) -> str:
        state = f"serving at {self.address}" if self._running else "not serving"
        return f"<GrpcMock {self.service_name} {state}>"

    # -- the service ----------------------------------------------------------------------

    @property
    def service_name(self) -> str:
        """The service's full name, e.g. ``user.v1.UserService`` (also its health name)."""
        return self._service.full_name

    @property
    def rpc_names(self) -> tuple[str, ...]:
        return tuple(self._rpcs)

    @property
    def allowed_codes(self) -> frozenset[grpc.StatusCode]:
        return self._allowed

    def _select(self, selector: Callable[[Stub], object], *, programmable: bool = True) -> _Rpc:
        example = f"`lambda stub: stub.{next(iter(self._rpcs), 'Rpc')}`"
        if not callable(selector):
            raise MockError(f"select an RPC with a lambda, e.g. {example}; got {selector!r}")
        selected = selector(cast("Stub", self._proxy))
        if not isinstance(selected, _RpcRef):
            raise MockError(
                f"the selector must return an RPC of the stub, e.g. {example}; it returned "
                f"{selected!r}"
            )
        rpc = selected.rpc
        if programmable and rpc.streaming:
            raise MockError(
                f"{self.service_name}.{rpc.name} is {rpc.streaming}; harness.mocks programs "
                "and records unary-unary RPCs only"
            )
        return rpc

    def _check_code(self, code: object, rpc: _Rpc, what: str) -> None:
        if not isinstance(code, grpc.StatusCode):
            raise MockError(f"{what}: expected a grpc.StatusCode, got {code!r}")
        if code is grpc.StatusCode.OK:
            raise MockError(f"{what}: OK is not a failure; use .returns() or .responds()")
        if code not in self._allowed:
            allowed = ", ".join(sorted(c.name for c in self._allowed))
            raise MockError(
                f"{what}: {self.service_name}.{rpc.name} must not answer {code.name}: the "
                f"contract does not promise it (allowed: {allowed})"
            )

    # -- programming ------------------------------------------------------------------------

    def when(
        self, rpc: Callable[[Stub], grpc.aio.UnaryUnaryMultiCallable[Req, Resp]]
    ) -> Behaviour[Req, Resp]:
        """Program an RPC, replacing what it was programmed with before.

        ``rpc`` selects it from the stub: ``mock.when(lambda stub: stub.GetUser)``.
        """
        selected = self._select(rpc)
        steps = [_Step()]
        with self._lock:
            self._programs[selected.name] = steps
        return Behaviour(self, selected, steps)

    def reset(self) -> None:
        """Forget every programmed behaviour, every recorded call and every error."""
        with self._lock:
            self._programs.clear()
            self._calls.clear()
            self._errors.clear()

    # -- recording and verification -------------------------------------------------------

    def calls(
        self, rpc: Callable[[Stub], grpc.aio.UnaryUnaryMultiCallable[Req, Resp]]
    ) -> list[Call[Req]]:
        """The calls the selected RPC received, oldest first."""
        return cast("list[Call[Req]]", self._calls_of(self._select(rpc)))

    def all_calls(self) -> list[Call[Message]]:
        """Every call the mock received, oldest first."""
        with self._lock:
            return list(self._calls)

    def verify(
        self, rpc: Callable[[Stub], grpc.aio.UnaryUnaryMultiCallable[Req, Resp]]
    ) -> Verification[Req]:
        """Expectations on the selected RPC's calls: ``mock.verify(...).called_once_with(r)``."""
        return Verification(self, self._select(rpc))

    @property
    def errors(self) -> list[str]:
        """Mistakes found while answering (a ``responds()`` function raised, returned the
        wrong type or aborted with a code not allowed); each call got UNKNOWN."""
        with self._lock:
            return list(self._errors)

    def assert_no_errors(self) -> None:
        """Raise :class:`MockVerificationError` listing :attr:`errors`, if any."""
        errors = self.errors
        if errors:
            listed = "\n".join(f"  - {error}" for error in errors)
            raise MockVerificationError(
                f"{self.service_name} mock: errors while answering:\n{listed}"
            )

    def _calls_of(self, rpc: _Rpc) -> list[Call[Any]]:
        with self._lock:
            return [call for call in self._calls if call.rpc == rpc.name]

    def _other_calls_summary(self, rpc: _Rpc) -> str:
        counts: dict[str, int] = {}
        for call in self.all_calls():
            if call.rpc != rpc.name:
                counts[call.rpc] = counts.get(call.rpc, 0) + 1
        return ", ".join(f"{name} x{count}" for name, count in counts.items())

    # -- answering --------------------------------------------------------------------------

    def _take_step(self, rpc: _Rpc, call: Call[Any]) -> _Answer:
        with self._lock:
            self._calls.append(call)
            steps = self._programs.get(rpc.name)
            if steps is None:
                return _Answer(
                    None,
                    f"{_PREFIX}: {self.service_name}.{rpc.name} was not programmed; program "
                    f"it with mock.when(lambda stub: stub.{rpc.name})",
                )
            for index, step in enumerate(steps):
                limit = (
                    step.times
                    if step.times is not None
                    else (1 if index < len(steps) - 1 else None)
                )
                if limit is None or step.used < limit:
                    step.used += 1
                    return _Answer(step)
            answered = ", ".join(f"{s.describe()} x{s.used}" for s in steps)
            return _Answer(
                None,
                f"{_PREFIX}: {self.service_name}.{rpc.name}: its programmed answers are used "
                f"up ({answered}); program more with mock.when(lambda stub: stub.{rpc.name})",
            )

    def _record_error(self, message: str) -> str:
        with self._lock:
            self._errors.append(message)
        return message

    async def _answer(self, rpc: _Rpc, raw: bytes, context: _Context) -> Message:
        try:
            request = rpc.request_class.FromString(raw)
        except Exception as error:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{_PREFIX}: the request is not a valid {rpc.request_class.DESCRIPTOR.full_name}"
                f": {type(error).__name__}",
            )
        metadata = tuple((item[0], item[1]) for item in (context.invocation_metadata() or ()))
        call = Call(rpc.name, rpc.path, request, metadata, datetime.now(UTC), context.peer())
        answer = self._take_step(rpc, call)
        step = answer.step
        if step is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, answer.unprogrammed)
        if step.delay:
            await asyncio.sleep(step.delay)
        outcome = step.outcome
        if outcome is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{_PREFIX}: {self.service_name}.{rpc.name} was programmed with when() but no "
                "outcome; add .returns(), .responds() or .fails()",
            )
        if isinstance(outcome, _Fails):
            await context.abort(outcome.code, outcome.details, outcome.trailing_metadata)
        if isinstance(outcome, _Returns):
            return outcome.response
        failure = await self._respond(rpc, outcome, call)
        if isinstance(failure, Message):
            return failure
        await context.abort(*failure)

    async def _respond(
        self, rpc: _Rpc, outcome: _Responds, call: Call[Any]
    ) -> Message | tuple[grpc.StatusCode, str, Metadata]:
        """Run a responds() function: its response, or the status to abort with."""
        what = f"{self.service_name}.{rpc.name}: {outcome.describe()}"
        try:
            result = outcome.function(call)
            if inspect.isawaitable(result):
                result = await _await_on(outcome.loop, result)
        except Abort as abort:
            try:
                self._check_code(abort.code, rpc, f"{what} raised Abort")
                trailing = _check_metadata(abort.trailing_metadata, f"{what} raised Abort")
            except MockError as error:
                return grpc.StatusCode.UNKNOWN, f"{_PREFIX}: {self._record_error(str(error))}", ()
            return abort.code, abort.details, trailing
        except Exception as error:
            message = self._record_error(f"{what} raised {error!r}")
            return grpc.StatusCode.UNKNOWN, f"{_PREFIX}: {message}", ()
        try:
            _check_response(rpc, result, what)
        except MockError as error:
            return grpc.StatusCode.UNKNOWN, f"{_PREFIX}: {self._record_error(str(error))}", ()
        return cast("Message", result)

    async def _unsupported(self, rpc: _Rpc, context: _Context) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{_PREFIX}: {self.service_name}.{rpc.name} is {rpc.streaming}; harness.mocks "
            "answers unary-unary RPCs only",
        )

    def _handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for rpc in self._rpcs.values():
            handlers[rpc.name] = self._method_handler(rpc)
        return grpc.method_handlers_generic_handler(self.service_name, handlers)

    def _method_handler(self, rpc: _Rpc) -> grpc.RpcMethodHandler[Any, Any]:
        # Requests arrive as bytes (no deserializer): one that does not parse gets
        # INVALID_ARGUMENT from _answer rather than grpc's INTERNAL.
        def serialize(message: Message) -> bytes:
            return message.SerializeToString()

        async def unary(raw: bytes, context: _Context) -> Message:
            return await self._answer(rpc, raw, context)

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
        return grpc.unary_stream_rpc_method_handler(refusal)

    # -- serving ----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` the server is bound to (as given to ``serve``); MockError if stopped."""
        running = self._running
        if running is None:
            raise MockError(f"the {self.service_name} mock is not serving; call serve() first")
        return f"{_host_in_address(running.host)}:{running.port}"

    @property
    def port(self) -> int:
        """The bound port (the one chosen when ``serve`` was given port 0)."""
        running = self._running
        if running is None:
            raise MockError(f"the {self.service_name} mock is not serving; call serve() first")
        return running.port

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: a free port) with health checking; return ``host:port``.

        ``host`` decides who can reach it: 127.0.0.1 for this machine, ``0.0.0.0`` or a
        Docker bridge address for containers. Health answers SERVING for ``""`` and for
        :attr:`service_name`. The server runs on a thread of its own; see the module doc.
        """
        return await asyncio.to_thread(self.start, host, port)

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING and stop; calls in flight get ``grace`` seconds. Idempotent."""
        await asyncio.to_thread(self.close, grace)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """:meth:`serve` for synchronous code (fixtures, scripts): blocks until listening."""
        if self._running is not None:
            raise MockError(f"the {self.service_name} mock is already serving at {self.address}")
        loop = BackgroundLoop(name=f"grpc-mock-{self._service.name}")
        loop.__enter__()
        try:
            self._running = loop.run(self._start_server(loop, host, port), timeout=30)
        except BaseException:
            loop.close()
            raise
        return self.address

    def close(self, grace: float | None = None) -> None:
        """:meth:`stop` for synchronous code. Idempotent."""
        running, self._running = self._running, None
        if running is None:
            return
        try:
            running.loop.run(self._stop_server(running, grace), timeout=(grace or 0) + 30)
        finally:
            running.loop.close()

    @contextlib.contextmanager
    def serving(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """``with mock.serving(...) as address:`` start, give the address, close."""
        address = self.start(host, port)
        try:
            yield address
        finally:
            self.close()

    @contextlib.asynccontextmanager
    async def channel(self) -> AsyncIterator[grpc.aio.Channel]:
        """A client channel to the mock, on the caller's loop.

        Serves on 127.0.0.1, port 0, for the block when the mock is not serving yet.
        """
        started = self._running is None
        if started:
            await self.serve()
        running = self._running
        assert running is not None
        try:
            target = f"{_client_host(running.host)}:{running.port}"
            async with grpc.aio.insecure_channel(target) as channel:
                yield channel
        finally:
            if started:
                await self.stop()

    async def _start_server(self, loop: BackgroundLoop, host: str, port: int) -> _Running:
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
        return _Running(loop, server, health_servicer, host, bound)

    @staticmethod
    async def _stop_server(running: _Running, grace: float | None) -> None:
        await running.health.enter_graceful_shutdown()
        await running.server.stop(grace)


async def _await_on(loop: asyncio.AbstractEventLoop | None, awaitable: Awaitable[Any]) -> Any:
    """Await on ``loop`` when it is another loop that runs, else here."""
    here = asyncio.get_running_loop()
    if loop is None or loop is here or not loop.is_running():
        return await awaitable

    async def run() -> Any:
        return await awaitable

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))


class GrpcMocks:
    """Makes mocks and closes them all: what a fixture wraps.

    ::

        with GrpcMocks() as mocks:
            users = mocks.of(user_pb2_grpc.UserServiceStub)
            ...
    """

    def __init__(self) -> None:
        self._mocks: list[GrpcMock[Any]] = []

    def of(
        self,
        stub: Callable[[grpc.aio.Channel], Stub],
        *,
        allowed_codes: Iterable[grpc.StatusCode] | None = None,
    ) -> GrpcMock[Stub]:
        """:meth:`GrpcMock.of`, closed with the others."""
        mock = GrpcMock.of(stub, allowed_codes=allowed_codes)
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
