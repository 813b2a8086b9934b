"""Expectations on the calls a mock received; a failure lists every call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, cast

import grpc
from google.protobuf import text_format
from google.protobuf.message import Message

from harness.errors import MockError, MockVerificationError

if TYPE_CHECKING:
    # grpc-stubs makes the aio context generic; at run time it is a plain class.
    _Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


from harness.mocks.script import Call, Script
from harness.mocks.service import Rpc

__all__ = [
    "Verification",
]


Stub = TypeVar("Stub")
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


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

    def __init__(self, script: Script, rpc: Rpc) -> None:
        self._script = script
        self._rpc = rpc

    def _calls(self) -> list[Call[Req]]:
        return cast("list[Call[Req]]", self._script.calls_of(self._rpc))

    def _fail(self, expectation: str, calls: list[Call[Req]]) -> MockVerificationError:
        text = (
            f"{self._script.service_name}.{self._rpc.name}: expected {expectation}\n"
            f"but received {_count(len(calls))}:\n{_format_calls(calls)}"
        )
        others = self._script.other_calls_summary(self._rpc)
        if others:
            text += f"\nother calls received by the mock: {others}"
        return MockVerificationError(text)

    def called_times(self, count: int) -> list[Call[Req]]:
        """Exactly ``count`` calls; returns them."""
        __tracebackhide__ = True
        calls = self._calls()
        if len(calls) != count:
            raise self._fail(_count(count), calls)
        return calls

    def called_once(self) -> Call[Req]:
        """Exactly one call, whatever its request; returns it."""
        __tracebackhide__ = True
        return self.called_times(1)[0]

    def called_once_with(self, request: Req) -> Call[Req]:
        """Exactly one call, with a request equal to ``request``; returns it."""
        __tracebackhide__ = True
        self._check_request(request)
        calls = self._calls()
        if len(calls) != 1 or calls[0].request != request:
            raise self._fail(f"1 call with\n{_format_message(request, '  ')}", calls)
        return calls[0]

    def called_with(self, request: Req) -> list[Call[Req]]:
        """At least one call with a request equal to ``request``; returns those calls."""
        __tracebackhide__ = True
        self._check_request(request)
        calls = self._calls()
        matching = [call for call in calls if call.request == request]
        if not matching:
            raise self._fail(f"a call with\n{_format_message(request, '  ')}", calls)
        return matching

    def never_called(self) -> None:
        """No call at all."""
        __tracebackhide__ = True
        calls = self._calls()
        if calls:
            raise self._fail("no call", calls)

    def _check_request(self, request: object) -> None:
        expected = self._rpc.descriptor.input_type.full_name
        actual = request.DESCRIPTOR.full_name if isinstance(request, Message) else None
        if actual != expected:
            got = actual or type(request).__name__
            raise MockError(f"{self._rpc.name} takes {expected}, not {got}")
