"""How a test programs a server-streaming RPC: :class:`StreamBehaviour`, and the serving of
its programmed stream."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Self, TypeAlias, TypeVar, cast

import grpc
from google.protobuf.message import Message

from harness.errors import MockError

if TYPE_CHECKING:
    # grpc-stubs makes the aio context generic; at run time it is a plain class.
    _Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


from harness.mocks.script import (
    Abort,
    Call,
    Responds,
    Script,
    Step,
    Steps,
    Streams,
    await_on,
    check_response,
    copy_response,
    responder,
)
from harness.mocks.service import PREFIX, Metadata, Rpc

__all__ = [
    "StreamBehaviour",
    "send_stream",
]


Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


class StreamBehaviour(Steps[Req, Resp]):
    """How one server-streaming RPC answers, from ``mock.when(...)``; every method returns
    the behaviour.

    A step's outcome is a stream: ``streams([m1, m2])`` sends the messages in order and
    ends with OK; ``.fails(code)`` after it ends the stream with that status after the
    messages; ``fails(code)`` alone fails the call before any message; ``responds(fn)``
    sends what ``fn(call)`` gives (it may raise :class:`Abort` to end with a status). ``delays(s)``
    waits ``s`` seconds before each message (and before the failure). ``times(n)`` and
    ``then()`` work as for unary RPCs: each call takes a step and gets its whole stream.
    """

    OUTCOMES = ".streams(), .responds() or .fails()"

    if not TYPE_CHECKING:  # a clear error at run time; mypy says "has no attribute"

        def __getattr__(self, name: str) -> Any:
            if name == "returns":
                raise MockError(
                    f"{self._script.service_name}.{self._rpc.name} is server-streaming: "
                    "program the messages it sends with .streams([...]) (or .responds(fn), "
                    "fn returning them), not .returns()"
                )
            raise AttributeError(name)

    def streams(self, messages: Iterable[Resp]) -> Self:
        """Send ``messages`` in order (each copied now), then end the stream with OK, or
        with the status of a ``.fails()`` that follows."""
        if isinstance(messages, Message) or not isinstance(messages, Iterable):
            raise MockError(
                f"streams() takes a list of {self._rpc.name}'s messages, got {messages!r}"
            )
        copies = []
        for index, message in enumerate(messages):
            check_response(self._rpc, message, f"streams(): message {index}")
            copies.append(copy_response(self._rpc, message))
        return self._set_outcome(Streams(tuple(copies)))

    def responds(
        self,
        function: Callable[
            [Call[Req]], Iterable[Resp] | AsyncIterable[Resp] | Awaitable[Iterable[Resp]]
        ],
    ) -> Self:
        """Send the messages ``function(call)`` gives: a list or a generator, an async
        generator, or an awaitable of a list; each after this step's delay.

        The function (or its generator) may raise :class:`Abort` to end the stream with a
        status (held to the declared codes as ``fails()`` is) after the messages it gave.
        An async one runs on the event loop that called ``responds()`` while that loop
        runs, else on the mock's. Anything else it raises, a message of the wrong type or
        a result that is no stream ends the stream UNKNOWN, the reason in ``mock.errors``.
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
        """End the stream with the error status ``code``: after the messages of a
        ``streams()`` before it on this step, else before any message.

        ``code`` must be one the RPC declares in its contract's ``(kit.v1.may_return)``
        (or DEADLINE_EXCEEDED or CANCELLED, the caller's side); ``breaks_contract=True``
        lets a test give any error code.
        """
        failure = self._failure(code, details, trailing_metadata, breaks=breaks_contract)
        with self._script.lock:
            step = self._steps[-1]
            outcome = step.outcome
            if isinstance(outcome, Streams) and outcome.failure is None:
                step.outcome = Streams(outcome.messages, failure)
                return self
        return self._set_outcome(Streams((), failure))

    def delays(self, seconds: float) -> Self:
        """Wait ``seconds`` before each message of this step's stream (and its failure)."""
        return super().delays(seconds)


async def send_stream(
    script: Script, rpc: Rpc, step: Step, call: Call[Any], context: _Context
) -> AsyncIterator[Message]:
    """The messages of ``step``'s stream, each after its delay, then its end: OK, or the
    programmed failure, or the status a ``responds`` function's :class:`Abort` gives."""
    outcome = step.outcome
    if isinstance(outcome, Streams):
        for message in outcome.messages:
            await _pause(step)
            yield message
        failure = outcome.failure
        if failure is not None:
            await _pause(step)
            await context.abort(failure.code, failure.details, failure.trailing_metadata)
        return
    assert isinstance(outcome, Responds), outcome  # when() gives streaming RPCs no other
    what = f"{script.service_name}.{rpc.name}: {outcome.describe()}"
    status: tuple[grpc.StatusCode, str, Metadata] | None = None
    try:
        index = 0
        async for item in _messages_of(outcome, call, rpc, what):
            check_response(rpc, item, f"{what}: message {index}")
            index += 1
            await _pause(step)
            yield cast("Message", item)
    except Abort as abort:
        status = script.status_of_abort(abort, rpc, what)
    except MockError as error:
        status = grpc.StatusCode.UNKNOWN, f"{PREFIX}: {script.record_error(str(error))}", ()
    except Exception as error:
        reason = script.record_error(f"{what} raised {error!r}")
        status = grpc.StatusCode.UNKNOWN, f"{PREFIX}: {reason}", ()
    if status is not None:
        await context.abort(*status)


async def _pause(step: Step) -> None:
    if step.delay:
        await asyncio.sleep(step.delay)


async def _messages_of(
    outcome: Responds, call: Call[Any], rpc: Rpc, what: str
) -> AsyncIterator[object]:
    """What a ``responds`` function streams: a (sync or async) iterable it returns, or an
    awaitable of one; an async one is iterated on the loop that programmed it."""
    result = outcome.function(call)
    if inspect.isawaitable(result):
        result = await await_on(outcome.loop, result)
    if isinstance(result, AsyncIterable):
        iterator = aiter(result)
        while True:
            try:
                item = await await_on(outcome.loop, anext(iterator))
            except StopAsyncIteration:
                return
            yield item
    elif isinstance(result, Iterable) and not isinstance(result, Message | str | bytes):
        for item in result:
            yield item
    else:
        raise MockError(
            f"{what} returned {type(result).__name__}, not the messages of a stream: return "
            f"a list, a generator or an async generator of {rpc.descriptor.output_type.name}"
        )
