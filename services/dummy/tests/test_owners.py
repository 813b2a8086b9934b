"""The owners adapter over the user service, against a generated mock of that service."""

from __future__ import annotations

from uuid import uuid4

import grpc
import pytest

from dummy.errors import DummyError, OwnersTimedOut, OwnersUnavailable
from dummy.owners import UserServiceOwners
from harness import GrpcMocks
from user import UserClient
from user.v1 import user_pb2, user_pb2_grpc

# What dummy got from the user mocks here is its contract with the user service
# (contracts/user/consumers/dummy.json, --harness-interactions).
pytestmark = pytest.mark.consumer("dummy")


async def test_a_user_the_user_service_knows_is_an_owner(grpc_mocks: GrpcMocks) -> None:
    owner = uuid4()
    users = grpc_mocks.of(user_pb2_grpc.UserServiceStub)
    users.given("a user exists", id=str(owner), email="a@example.com")
    users.when(lambda s: s.GetUser).returns(
        user_pb2.GetUserResponse(user=user_pb2.User(id=str(owner), email="a@example.com"))
    )
    async with grpc.aio.insecure_channel(users.start()) as channel:
        assert await UserServiceOwners(UserClient(channel)).exists(owner) is True
    users.verify(lambda s: s.GetUser).called_once_with(user_pb2.GetUserRequest(id=str(owner)))


async def test_not_found_means_not_an_owner(grpc_mocks: GrpcMocks) -> None:
    users = grpc_mocks.of(user_pb2_grpc.UserServiceStub)
    users.when(lambda s: s.GetUser).fails(grpc.StatusCode.NOT_FOUND, "no such user")
    async with grpc.aio.insecure_channel(users.start()) as channel:
        assert await UserServiceOwners(UserClient(channel)).exists(uuid4()) is False


@pytest.mark.parametrize(
    ("failure", "delay", "raised"),
    [
        (grpc.StatusCode.UNAVAILABLE, 0.0, OwnersUnavailable),
        (grpc.StatusCode.PERMISSION_DENIED, 0.0, OwnersUnavailable),
        (None, 1.0, OwnersTimedOut),  # slower than the client's deadline below
    ],
    ids=["unavailable", "unexpected code", "too slow"],
)
async def test_anything_else_means_cannot_tell_now(
    grpc_mocks: GrpcMocks,
    failure: grpc.StatusCode | None,
    delay: float,
    raised: type[DummyError],
) -> None:
    users = grpc_mocks.of(user_pb2_grpc.UserServiceStub)
    behaviour = users.when(lambda s: s.GetUser).delays(delay)
    if failure is None:
        behaviour.returns(user_pb2.GetUserResponse(user=user_pb2.User(id=str(uuid4()))))
    else:
        # PERMISSION_DENIED is no code GetUser declares: a user service breaking its contract.
        behaviour.fails(failure, "down", breaks_contract=True)
    async with grpc.aio.insecure_channel(users.start()) as channel:
        owners = UserServiceOwners(UserClient(channel, timeout=0.2))
        with pytest.raises(raised) as error:
            await owners.exists(uuid4())
    if raised is OwnersTimedOut:
        assert error.value.message == (
            "the user service did not answer about the owner in time; retry"
        )
