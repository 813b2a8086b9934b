"""Real services held to their contracts: every answer a test gets through a channel the
harness made is checked against the RPC's declared codes.

:class:`DeclaredStatusCheck` is a ``grpc.aio`` client interceptor. An error status the
RPC does not declare in ``(kit.v1.may_return)`` becomes :class:`UndeclaredStatusError`
(an AssertionError) where the test awaits the call, naming the RPC, the code, its
details and the request: the test that caused it fails at that line, even when it
expected an error (``pytest.raises(grpc.aio.AioRpcError)`` does not catch it).

Not counted against the provider: :data:`CALLER_SIDE_CODES` (DEADLINE_EXCEEDED once the
call's own deadline has passed, CANCELLED), and RPCs the process knows no descriptor of
or whose contract has no ``(kit.v1.may_return)``, beyond UNKNOWN and INTERNAL, which no
contract promises.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf import text_format
from google.protobuf.message import Message

from harness.contracts.declared import (
    CALLER_SIDE_CODES,
    NEVER_PROMISED,
    declared_codes_of_path,
    describe_declared,
)
from harness.errors import UndeclaredStatusError

if TYPE_CHECKING:
    from grpc.aio import ClientCallDetails

    # grpc-stubs makes the interceptor generic; at run time it is a plain class.
    _Interceptor: TypeAlias = grpc.aio.UnaryUnaryClientInterceptor[Message, Any]
else:
    _Interceptor = grpc.aio.UnaryUnaryClientInterceptor

__all__ = [
    "DeclaredStatusCheck",
    "checked_channel",
    "undeclared_status",
]

# How much of a request a failure message shows.
REQUEST_SHOWN = 500


def undeclared_status(
    path: str,
    code: grpc.StatusCode,
    *,
    deadline_passed: bool = False,
) -> str | None:
    """Why ``code``, answered by the RPC at ``path``, breaks its contract; None if it does not."""
    if code is grpc.StatusCode.OK:
        return None
    if code in CALLER_SIDE_CODES and (code is grpc.StatusCode.CANCELLED or deadline_passed):
        return None  # the caller's own doing
    known, declared = declared_codes_of_path(path)
    if declared is None:
        if not known or code not in NEVER_PROMISED:
            return None
        return f"no contract promises {code.name}"
    if code in declared:
        return None
    return describe_declared(declared)


def _shown(request: object) -> str:
    if isinstance(request, Message):
        text = text_format.MessageToString(request, as_one_line=True) or "(empty)"
        shown = f"{request.DESCRIPTOR.full_name} {{ {text} }}"
    else:
        shown = repr(request)
    if len(shown) > REQUEST_SHOWN:
        shown = f"{shown[:REQUEST_SHOWN]}... ({len(shown)} characters)"
    return shown


class DeclaredStatusCheck(_Interceptor):
    """Fails a unary call whose status its RPC does not declare (module doc).

    Add it to a channel: ``grpc.aio.insecure_channel(address,
    interceptors=[DeclaredStatusCheck()])``; the stacks' channels and stubs have it.
    """

    async def intercept_unary_unary(
        self,
        continuation: Callable[[ClientCallDetails, Message], Any],
        client_call_details: ClientCallDetails,
        request: Message,
    ) -> Any:
        # grpc-stubs types the continuation as returning the call; it returns an
        # awaitable of it (grpc.aio runs the next interceptor first).
        started = time.monotonic()
        call = await continuation(client_call_details, request)
        try:
            await call
        except grpc.aio.AioRpcError as error:
            self._check(client_call_details, request, error, started)
        # The call itself, done: the caller's await gives its response or raises its
        # error, and its code and metadata stay readable.
        return call

    @staticmethod
    def _check(
        details: ClientCallDetails, request: Message, error: grpc.aio.AioRpcError, started: float
    ) -> None:
        method = details.method
        path = method.decode() if isinstance(method, bytes) else str(method)
        timeout = details.timeout
        passed = timeout is not None and time.monotonic() - started >= timeout
        code = error.code()
        why = undeclared_status(path, code, deadline_passed=passed)
        if why is None:
            return
        raise UndeclaredStatusError(
            f"{path.lstrip('/')} answered {code.name} ({error.details()!r}), which it does "
            f"not declare: {why}.\n  the request: {_shown(request)}\n"
            "  Either the service is wrong (fix it), or its contract is (add the code to the "
            "RPC's (kit.v1.may_return) option and tell its consumers)."
        ) from error


def checked_channel(target: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """An insecure ``grpc.aio`` channel to ``target`` whose calls :class:`DeclaredStatusCheck`
    holds to their contracts: what the harness's stacks use, and what a ``conftest.py``
    serving a service in-process should use for its stubs."""
    return grpc.aio.insecure_channel(
        target,
        options=list(options),
        # grpc-stubs types the aio interceptors as a placeholder that must be ignored.
        interceptors=[DeclaredStatusCheck()],  # type: ignore[list-item]
    )
