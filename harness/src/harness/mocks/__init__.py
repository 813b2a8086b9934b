"""Generated gRPC mocks: a stand-in for any service of ``contracts/``, built from its descriptor.

::

    users = GrpcMock.of(user_pb2_grpc.UserServiceStub)  # GrpcMock[UserServiceAsyncStub]
    users.when(lambda stub: stub.GetUser).returns(user_pb2.GetUserResponse(user=...))
    users.when(lambda stub: stub.CreateUser).fails(grpc.StatusCode.ALREADY_EXISTS, "taken")
    async with users.channel() as channel:  # an in-process server on 127.0.0.1, port 0
        ...                                  # the code under test calls through `channel`
    users.verify(lambda stub: stub.GetUser).called_once_with(user_pb2.GetUserRequest(id=...))
    # a server-streaming RPC: its messages in order, then (here) a status
    feed.when(lambda stub: stub.WatchTicks).streams([tick1, tick2]).fails(UNAVAILABLE)

RPCs are selected with a lambda over the service's generated *AsyncStub*: under
``mypy --strict`` an RPC that does not exist is an attribute error and the response
must be the RPC's output type; at run time a proxy stands in for the stub and raises
:class:`UnknownRpcError`, listing the service's RPCs, at once.

The server (``start``/``close``, ``astart``/``aclose`` in async code, the context manager
``serving``, ``channel``) runs on an event loop thread of the mock's
own, so it answers while the test blocks (a synchronous client, ``subprocess.run``, a
synchronous fixture waiting on a container) and whatever the loop scope of the test.
Async ``responds`` functions run on the loop that programmed them, so they may await
that loop's objects.

Held to the contract: ``fails()`` and :class:`Abort` take only the codes the RPC declares
in its ``(kit.v1.may_return)`` option (read by :mod:`harness.contracts`), unless given
``breaks_contract=True``.

Errors (in :mod:`harness.errors`): :class:`MockError` when the mock is programmed or
used wrongly (raised at once), :class:`UnknownRpcError` for an RPC the service lacks,
:class:`MockVerificationError` (an AssertionError) when a ``verify()`` expectation fails.

The modules: ``mock`` (the facade tests use: :class:`GrpcMock`, :class:`GrpcMocks`),
``service`` (the service read from its descriptor, with each RPC's declared status
codes, and the stub proxy), ``script`` (what the mock was programmed with and received,
under one lock, and :class:`Behaviour`), ``streams`` (:class:`StreamBehaviour`, what a
server-streaming RPC is programmed with, and the sending of its stream),
``verification`` (:class:`Verification`),
``serving`` (the serving half).
"""

from __future__ import annotations

from harness.mocks.mock import GrpcMock, GrpcMocks
from harness.mocks.script import Abort, Behaviour, Call
from harness.mocks.service import Metadata
from harness.mocks.streams import StreamBehaviour
from harness.mocks.verification import Verification

__all__ = [
    "Abort",
    "Behaviour",
    "Call",
    "GrpcMock",
    "GrpcMocks",
    "Metadata",
    "StreamBehaviour",
    "Verification",
]
