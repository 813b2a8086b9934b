"""A dependency swapped for a generated mock, and traces across services, on either backend."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import grpc
import pytest

from dummy.v1 import dummy_pb2 as pb
from dummy.v1 import dummy_pb2_grpc
from fixtures.factories import CreateUserRequestFactory
from harness import GrpcMock, StackView, TraceReceiver, assert_logs_carry_trace
from user.v1 import user_pb2, user_pb2_grpc

if TYPE_CHECKING:
    from user.v1.user_pb2_grpc import UserServiceAsyncStub

OWNER = "00000000-0000-4000-8000-0000000000aa"


def user_mock(stack: StackView) -> GrpcMock[UserServiceAsyncStub]:
    mock: GrpcMock[UserServiceAsyncStub] = stack.mock("user")
    return mock


@pytest.mark.stack("dummy", mocks=["user"])
async def test_dummy_asks_the_mocked_user_service_about_the_owner(stack: StackView) -> None:
    users = user_mock(stack)
    users.when(lambda s: s.GetUser).returns(
        user_pb2.GetUserResponse(user=user_pb2.User(id=OWNER, email="ann@example.com"))
    )
    dummy = stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub)
    created = await dummy.CreateEntity(
        pb.CreateEntityRequest(owner_id=OWNER, name="mocked owner"), timeout=10
    )
    assert created.entity.owner_id == OWNER
    users.verify(lambda s: s.GetUser).called_once_with(user_pb2.GetUserRequest(id=OWNER))


@pytest.mark.stack("dummy", mocks=["user"])
async def test_the_mock_is_reset_between_tests_and_its_errors_reach_dummy(
    stack: StackView,
) -> None:
    users = user_mock(stack)
    users.verify(lambda s: s.GetUser).never_called()  # the previous test's call is gone
    users.when(lambda s: s.GetUser).fails(grpc.StatusCode.NOT_FOUND, "no such user")
    dummy = stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await dummy.CreateEntity(pb.CreateEntityRequest(owner_id=OWNER, name="x"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.stack("dummy", mocks=["user"])
async def test_a_slow_dependency_gives_deadline_exceeded_within_dummys_deadline(
    stack: StackView,
) -> None:
    users = user_mock(stack)
    users.when(lambda s: s.GetUser).delays(5).returns(
        user_pb2.GetUserResponse(user=user_pb2.User(id=OWNER))
    )
    dummy = stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as slow:
        await dummy.CreateEntity(pb.CreateEntityRequest(owner_id=OWNER, name="x"), timeout=10)
    # declared in dummy.proto: the user service did not answer in time, nothing stored
    assert slow.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "did not answer about the owner in time" in (slow.value.details() or "")
    # dummy's own deadline on the call (2 s), not the test's (10 s), ended it
    assert time.monotonic() - started < 5


@pytest.mark.stack("dummy")
async def test_one_trace_crosses_from_the_test_through_dummy_to_user(
    stack: StackView, traces: TraceReceiver
) -> None:
    users = stack.stub("user", user_pb2_grpc.UserServiceStub)
    owner = (await users.CreateUser(CreateUserRequestFactory.build(), timeout=10)).user
    dummy = stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub)
    with traces.client_span("create an entity") as call:
        await dummy.CreateEntity(
            pb.CreateEntityRequest(owner_id=owner.id, name="traced"),
            metadata=call.metadata,
            timeout=10,
        )
    trace = await traces.trace(call.trace_id)
    trace.assert_single_trace().assert_no_orphans()
    trace.assert_services(["test", "dummy", "user"])
    trace.assert_path(
        "create an entity",
        "/dummy.v1.DummyService/CreateEntity",
        "/user.v1.UserService/GetUser",
    )
    trace.assert_rpc("/dummy.v1.DummyService/CreateEntity", service="dummy", code="OK")
    lines = [*stack.logs("dummy", 200).splitlines(), *stack.logs("user", 200).splitlines()]
    assert_logs_carry_trace(lines, trace, services=["dummy", "user"])


@pytest.mark.stack("dummy")
async def test_a_failed_trace_assertion_prints_the_tree(
    stack: StackView, traces: TraceReceiver
) -> None:
    dummy = stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub)
    with traces.client_span("unknown owner") as call, pytest.raises(grpc.aio.AioRpcError):
        await dummy.CreateEntity(
            pb.CreateEntityRequest(owner_id=OWNER, name="x"), metadata=call.metadata, timeout=10
        )
    trace = await traces.trace(call.trace_id)
    with pytest.raises(AssertionError) as failed:
        trace.assert_services(["test", "dummy", "auth"])
    message = str(failed.value)
    assert "unknown owner" in message
    assert "/dummy.v1.DummyService/CreateEntity" in message
    assert "FAILED_PRECONDITION" in message or "ERROR" in message or "OK" in message
