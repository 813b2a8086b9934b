"""How a test programs a server-streaming RPC: :class:`StreamBehaviour`, and the serving of
its programmed stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Self, TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from harness.errors import MockError

if TYPE_CHECKING:
    # grpc-stubs makes the aio context generic; at run time it is a plain class.
    _Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


from harness.mocks.script import Fails, Step, Steps, Streams, check_response, copy_response
from harness.mocks.service import Metadata

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
    messages; ``fails(code)`` alone fails the call before any message. ``delays(s)``
    waits ``s`` seconds before each message (and before the failure). ``times(n)`` and
    ``then()`` work as for unary RPCs: each call takes a step and gets its whole stream.
    """

    OUTCOMES = ".streams() or .fails()"

    if not TYPE_CHECKING:  # a clear error at run time; mypy says "has no attribute"

        def __getattr__(self, name: str) -> Any:
            if name in ("returns", "responds"):
                raise MockError(
                    f"{self._script.service_name}.{self._rpc.name} is server-streaming: "
                    f"program the messages it sends with .streams([...]), not .{name}()"
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


async def send_stream(step: Step, context: _Context) -> AsyncIterator[Message]:
    """The messages of ``step``'s stream, each after its delay; then its failure, if any."""
    outcome = step.outcome
    assert isinstance(outcome, Streams), outcome  # when() gives streaming RPCs no other
    for message in outcome.messages:
        if step.delay:
            await asyncio.sleep(step.delay)
        yield message
    failure: Fails | None = outcome.failure
    if failure is not None:
        if step.delay:
            await asyncio.sleep(step.delay)
        await context.abort(failure.code, failure.details, failure.trailing_metadata)
