"""What a mock answers: the calls it records, the programs (steps of outcomes) it follows,
the errors its answers hit, all owned by one :class:`Script`; and :class:`Behaviour`,
how a test programs an RPC."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Self, TypeAlias, TypeVar, cast

import grpc
from google.protobuf.message import Message

from harness.errors import MockError

if TYPE_CHECKING:
    # grpc-stubs makes the aio context generic; at run time it is a plain class.
    _Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


from harness.contracts.declared import (
    CALLER_SIDE_CODES,
    MAY_RETURN,
    NEVER_PROMISED,
    describe_declared,
)
from harness.contracts.interactions import MATCHERS, RECORDER, as_dict, leaves
from harness.mocks.service import PREFIX, Metadata, Rpc, check_metadata

__all__ = [
    "Abort",
    "Answer",
    "Behaviour",
    "Call",
    "Fails",
    "Outcome",
    "Responds",
    "Returns",
    "Script",
    "Step",
    "Steps",
    "Streams",
    "await_on",
    "check_matchers",
    "check_response",
    "copy_response",
    "responder",
]


Stub = TypeVar("Stub")
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


class Abort(Exception):
    """Raise from a ``responds()`` function to answer an error status instead of a response.

    The status is checked against the codes the RPC declares, as ``fails()`` is, and
    ``breaks_contract=True`` lifts that check the same way.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str = "",
        *,
        trailing_metadata: Metadata = (),
        breaks_contract: bool = False,
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata
        self.breaks_contract = breaks_contract


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


@dataclass(frozen=True)
class Returns:
    response: Message
    matchers: tuple[tuple[str, str], ...] = ()  # recorded with it: field path -> matcher

    def describe(self) -> str:
        return f"returns({self.response.DESCRIPTOR.name})"


@dataclass(frozen=True)
class Responds:
    function: Callable[[Call[Any]], Any]
    loop: asyncio.AbstractEventLoop | None  # where an async function must run

    def describe(self) -> str:
        return f"responds({getattr(self.function, '__qualname__', repr(self.function))})"


@dataclass(frozen=True)
class Fails:
    code: grpc.StatusCode
    details: str
    trailing_metadata: Metadata
    breaks_contract: bool = False

    def describe(self) -> str:
        return f"fails({self.code.name}, {self.details!r})"


def responder(function: object) -> Responds:
    """The outcome of ``responds(function)`` (unary or stream): ``function`` checked to be
    callable, with the event loop it was given on (its async results run there)."""
    if not callable(function):
        raise MockError(f"responds() takes a function of the call, got {function!r}")
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    return Responds(cast("Callable[[Call[Any]], Any]", function), loop)


@dataclass(frozen=True)
class Streams:
    """A server-streaming RPC's outcome: its messages in order, then OK or ``failure``."""

    messages: tuple[Message, ...]
    failure: Fails | None = None

    def describe(self) -> str:
        count = len(self.messages)
        parts = [f"streams({count} message{'' if count == 1 else 's'})"] if count else []
        if self.failure is not None:
            parts.append(self.failure.describe())
        return ".".join(parts)


Outcome: TypeAlias = Returns | Responds | Fails | Streams


@dataclass
class Step:
    outcome: Outcome | None = None
    delay: float = 0.0  # before the outcome; in a stream, before each message and the failure
    times: int | None = None  # None: once if another step follows, else every call
    used: int = 0

    def describe(self) -> str:
        parts = [self.outcome.describe() if self.outcome else "no outcome"]
        if self.delay:
            parts.append(f"delays({self.delay})")
        if self.times is not None:
            parts.append(f"times({self.times})")
        return ".".join(parts)


@dataclass
class Answer:
    """What the handler decided, computed under the lock and then acted on."""

    step: Step | None
    unprogrammed: str = ""


class Script:
    """What a mock was programmed with and what it received, under one lock: the state that
    programming (:class:`Behaviour`), answering (the server) and verification share."""

    def __init__(self, service_name: str) -> None:
        self.service_name = service_name
        self.lock = threading.Lock()  # held for every read and change of the script
        self._programs: dict[str, list[Step]] = {}
        self._calls: list[Call[Any]] = []
        self._errors: list[str] = []
        # the provider states the test named (mock.given), in order: recorded with answers
        self._given: list[tuple[str, dict[str, str]]] = []

    def given(self, state: str, params: dict[str, str]) -> None:
        with self.lock:
            self._given.append((state, params))

    def record(
        self,
        rpc: Rpc,
        call: Call[Any],
        response: Message | None,
        code: grpc.StatusCode,
        *,
        breaks_contract: bool = False,
        matchers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Hand an answer to the consumer-driven contract recorder (when it records)."""
        if breaks_contract:
            return
        with self.lock:
            given = list(self._given)
        RECORDER.record(
            self.service_name, rpc.name, given, call.request, response, code, dict(matchers)
        )

    def check_code(
        self, code: object, rpc: Rpc, what: str, *, breaks_contract: bool = False
    ) -> None:
        """Refuse a code ``rpc`` may not fail with: OK always; unless ``breaks_contract``,
        a code its contract does not declare (or, without a declaration, UNKNOWN and
        INTERNAL), :data:`CALLER_SIDE_CODES` excepted."""
        if not isinstance(code, grpc.StatusCode):
            raise MockError(f"{what}: expected a grpc.StatusCode, got {code!r}")
        if code is grpc.StatusCode.OK:
            raise MockError(f"{what}: OK is not a failure; use .returns() or .responds()")
        if breaks_contract or code in CALLER_SIDE_CODES:
            return
        declared = rpc.declared
        if declared is None and code not in NEVER_PROMISED:
            return
        if declared is not None and code in declared:
            return
        why = describe_declared(declared)
        if declared is None:
            why = f"{why} and no contract promises {code.name}"
        raise MockError(
            f"{what}: {self.service_name}.{rpc.name} does not declare {code.name}: {why}. "
            "A mock answers only what the real service may (or DEADLINE_EXCEEDED and "
            "CANCELLED, which the caller's side makes); to test a caller against a provider "
            f"that breaks its contract, pass breaks_contract=True; if the RPC may answer "
            f"{code.name}, add it to its ({MAY_RETURN}) option"
        )

    def status_of_abort(
        self, abort: Abort, rpc: Rpc, what: str
    ) -> tuple[grpc.StatusCode, str, Metadata]:
        """The status a responder's :class:`Abort` answers: its own when allowed, else
        UNKNOWN with the reason (kept in :attr:`errors`)."""
        try:
            self.check_code(
                abort.code, rpc, f"{what} raised Abort", breaks_contract=abort.breaks_contract
            )
            trailing = check_metadata(abort.trailing_metadata, f"{what} raised Abort")
        except MockError as error:
            return grpc.StatusCode.UNKNOWN, f"{PREFIX}: {self.record_error(str(error))}", ()
        return abort.code, abort.details, trailing

    def program(self, rpc: Rpc) -> list[Step]:
        """A new program for ``rpc`` (one empty step), replacing the one it had."""
        steps = [Step()]
        with self.lock:
            self._programs[rpc.name] = steps
        return steps

    def reset(self) -> None:
        with self.lock:
            self._programs.clear()
            self._calls.clear()
            self._errors.clear()
            self._given.clear()

    def calls_of(self, rpc: Rpc) -> list[Call[Any]]:
        with self.lock:
            return [call for call in self._calls if call.rpc == rpc.name]

    def all_calls(self) -> list[Call[Message]]:
        with self.lock:
            return list(self._calls)

    def other_calls_summary(self, rpc: Rpc) -> str:
        counts: dict[str, int] = {}
        for call in self.all_calls():
            if call.rpc != rpc.name:
                counts[call.rpc] = counts.get(call.rpc, 0) + 1
        return ", ".join(f"{name} x{count}" for name, count in counts.items())

    @property
    def errors(self) -> list[str]:
        with self.lock:
            return list(self._errors)

    def record_error(self, message: str) -> str:
        with self.lock:
            self._errors.append(message)
        return message

    def take_step(self, rpc: Rpc, call: Call[Any]) -> Answer:
        with self.lock:
            self._calls.append(call)
            steps = self._programs.get(rpc.name)
            if steps is None:
                return Answer(
                    None,
                    f"{PREFIX}: {self.service_name}.{rpc.name} was not programmed; program "
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
                    return Answer(step)
            answered = ", ".join(f"{s.describe()} x{s.used}" for s in steps)
            return Answer(
                None,
                f"{PREFIX}: {self.service_name}.{rpc.name}: its programmed answers are used "
                f"up ({answered}); program more with mock.when(lambda stub: stub.{rpc.name})",
            )


class Steps(Generic[Req, Resp]):
    """What :class:`Behaviour` and a stream's behaviour share: the steps of one RPC's
    program, each with its outcome, ``delays``, ``times``, and ``then()`` between them."""

    OUTCOMES = ".returns(), .responds() or .fails()"  # how a step gets its outcome

    def __init__(self, script: Script, rpc: Rpc, steps: list[Step]) -> None:
        self._script = script
        self._rpc = rpc
        self._steps = steps

    def __repr__(self) -> str:
        steps = ".then().".join(step.describe() for step in self._steps)
        return f"<{type(self).__name__} {self._rpc.name}: {steps}>"

    def delays(self, seconds: float) -> Self:
        """Wait ``seconds`` before answering (with this step's outcome)."""
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise MockError(f"delays() takes a number of seconds >= 0, got {seconds!r}")
        with self._script.lock:
            self._steps[-1].delay = float(seconds)
        return self

    def times(self, count: int) -> Self:
        """Let this step answer ``count`` calls; the next step (or UNIMPLEMENTED) follows."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise MockError(f"times() takes a count >= 1, got {count!r}")
        with self._script.lock:
            self._steps[-1].times = count
        return self

    def then(self) -> Self:
        """Start the next step: what the calls after this step's ones get."""
        with self._script.lock:
            if self._steps[-1].outcome is None:
                raise MockError(
                    f"{self._rpc.name}: then() after a step with no outcome; give it "
                    f"{self.OUTCOMES} first"
                )
            self._steps.append(Step())
        return self

    def _failure(
        self, code: grpc.StatusCode, details: str, trailing_metadata: Metadata, *, breaks: bool
    ) -> Fails:
        self._script.check_code(code, self._rpc, "fails()", breaks_contract=breaks)
        if not isinstance(details, str):
            raise MockError(f"fails(): details must be a str, got {details!r}")
        checked = check_metadata(trailing_metadata, "fails(trailing_metadata=...)")
        return Fails(code, details, checked, breaks)

    def _set_outcome(self, outcome: Outcome) -> Self:
        with self._script.lock:
            step = self._steps[-1]
            if step.outcome is not None:
                raise MockError(
                    f"{self._rpc.name}: this step already {step.outcome.describe()}; use "
                    ".then() to program what the next call gets"
                )
            step.outcome = outcome
        return self


class Behaviour(Steps[Req, Resp]):
    """How one unary RPC answers, from ``mock.when(...)``; every method returns the behaviour.

    A behaviour is a sequence of steps, each with one outcome (``returns``, ``responds``
    or ``fails``), an optional ``delays`` and an optional ``times``; ``then()`` starts the
    next step. Calls take the steps in order: a step answers ``times(n)`` calls, or one
    call when another step follows it, or every remaining call when it is the last one.
    Calls after the last step is used up get UNIMPLEMENTED saying so.
    """

    if not TYPE_CHECKING:  # a clear error at run time; mypy says "has no attribute"

        def __getattr__(self, name: str) -> Any:
            if name == "streams":
                raise MockError(
                    f"{self._script.service_name}.{self._rpc.name} is unary: program its "
                    "response with .returns() or .responds(), not .streams()"
                )
            raise AttributeError(name)

    def returns(self, response: Resp, *, matchers: dict[str, str] | None = None) -> Self:
        """Answer ``response`` (copied now, so later changes to it do not leak in).

        ``matchers`` (consumer-driven contracts) says how the provider's answer is compared
        with this one for fields the consumer relies on only by type, e.g.
        ``{"refreshed": "type"}``: paths of fields ``response`` sets, each ``"type"`` or
        ``"exact"`` (the default, but UUIDs and timestamps, which are ``"type"``).
        """
        check_response(self._rpc, response, "returns()")
        copy = copy_response(self._rpc, response)
        checked = check_matchers(copy, matchers or {})
        return self._set_outcome(Returns(copy, checked))

    def responds(self, function: Callable[[Call[Req]], Resp | Awaitable[Resp]]) -> Self:
        """Answer what ``function(call)`` returns (sync or async); it may raise :class:`Abort`.

        An async function runs on the event loop that called ``responds()`` while that
        loop runs (so it may await objects of the test's loop), else on the mock's loop.
        Anything else it raises, or a response of the wrong type, is answered UNKNOWN
        and kept in ``mock.errors``.
        """
        return self._set_outcome(responder(function))

    def fails(
        self,
        code: grpc.StatusCode,
        details: str = "",
        *,
        trailing_metadata: Metadata = (),
        breaks_contract: bool = False,
    ) -> Self:
        """Answer the error status ``code`` with ``details`` (and trailing metadata).

        ``code`` must be one the RPC declares in its contract's ``(kit.v1.may_return)``
        (or DEADLINE_EXCEEDED or CANCELLED, the caller's side); ``breaks_contract=True``
        lets a test give any error code, to see how its caller copes with a provider that
        answers what it promised not to.
        """
        failure = self._failure(code, details, trailing_metadata, breaks=breaks_contract)
        return self._set_outcome(failure)


def copy_response(rpc: Rpc, response: Message) -> Message:
    """A copy of ``response`` (checked to be the RPC's output) as the RPC's own class."""
    copy = rpc.response_class()
    copy.MergeFromString(response.SerializeToString())
    return copy


def check_matchers(response: Message, matchers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    if not isinstance(matchers, dict):
        raise MockError(
            f"returns(matchers=...) takes a dict of field path -> matcher, got {matchers!r}"
        )
    paths = {path for path, _ in leaves(as_dict(response))}
    for path, matcher in matchers.items():
        if matcher not in MATCHERS:
            raise MockError(
                f"returns(matchers=...): {path!r}: {matcher!r} is no matcher; use one of "
                f"{', '.join(MATCHERS)}"
            )
        if path not in paths:
            known = ", ".join(sorted(paths)) or "none"
            raise MockError(
                f"returns(matchers=...): {path!r} is no field the response sets (it sets: {known})"
            )
    return tuple(sorted(matchers.items()))


def check_response(rpc: Rpc, response: object, what: str) -> None:
    expected = rpc.descriptor.output_type.full_name
    actual = response.DESCRIPTOR.full_name if isinstance(response, Message) else None
    if actual != expected:
        got = actual or type(response).__name__
        raise MockError(f"{what}: {rpc.name} answers {expected}, not {got}")


async def await_on(loop: asyncio.AbstractEventLoop | None, awaitable: Awaitable[Any]) -> Any:
    """Await on ``loop`` when it is another loop that runs, else here."""
    here = asyncio.get_running_loop()
    if loop is None or loop is here or not loop.is_running():
        return await awaitable

    async def run() -> Any:
        return await awaitable

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))
