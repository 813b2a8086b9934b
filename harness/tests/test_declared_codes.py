"""Contracts that machines check: the (kit.v1.may_return) option read from descriptors,
mocks refusing what their RPC does not declare, and real services (here a mock that is
told to break its contract) held to it through the harness's channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc import StatusCode
from grpc_health.v1 import health_pb2
from kit.v1 import options_pb2

from dummy.v1 import dummy_pb2
from harness import (
    Abort,
    Call,
    ContractError,
    GrpcMock,
    MockError,
    UndeclaredStatusError,
    checked_channel,
    declared_codes,
    undeclared_status,
)
from user.v1 import user_pb2, user_pb2_grpc

if TYPE_CHECKING:
    from user.v1.user_pb2_grpc import UserServiceAsyncStub

    UserMock = GrpcMock[UserServiceAsyncStub]

DUMMY = dummy_pb2.DESCRIPTOR.services_by_name["DummyService"]
USER_ID = "6f0c3f0e-4d7e-4b0e-9a53-2f1b7f0c2a11"

# -- the option, read ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rpc", "codes"),
    [
        (
            "CreateEntity",
            {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "DEADLINE_EXCEEDED", "UNAVAILABLE"},
        ),
        ("GetEntity", {"INVALID_ARGUMENT", "NOT_FOUND", "UNAVAILABLE"}),
        ("ListEntities", {"INVALID_ARGUMENT", "UNAVAILABLE"}),
    ],
)
def test_declared_codes_are_read_from_the_option(rpc: str, codes: set[str]) -> None:
    declared = declared_codes(DUMMY.methods_by_name[rpc])
    assert declared is not None
    assert {code.name for code in declared} == codes


def test_an_rpc_without_the_option_declares_nothing() -> None:
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]
    assert declared_codes(health.methods_by_name["Check"]) is None


def _method_with(codes: list[int]) -> descriptor_pb2.MethodDescriptorProto:
    options = descriptor_pb2.MethodOptions()
    options.Extensions[options_pb2.may_return].codes.extend(
        options_pb2.Code.ValueType(code) for code in codes
    )
    return descriptor_pb2.MethodDescriptorProto(
        name="Get", input_type=".thing.v1.Empty", output_type=".thing.v1.Empty", options=options
    )


@pytest.mark.parametrize(
    ("codes", "problem"),
    [
        ([0, 5], "lists OK: list only the error codes"),
        ([], "lists no code"),
        ([5, 42], "lists [42], which are not gRPC status codes"),
    ],
    ids=["ok", "empty", "not a code"],
)
def test_a_malformed_option_is_a_contract_error(codes: list[int], problem: str) -> None:
    pool = descriptor_pool.DescriptorPool()
    for module in (descriptor_pb2, options_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    thing = descriptor_pb2.FileDescriptorProto(
        name="thing/v1/thing.proto",
        package="thing.v1",
        syntax="proto3",
        dependency=["kit/v1/options.proto"],
        message_type=[descriptor_pb2.DescriptorProto(name="Empty")],
        service=[descriptor_pb2.ServiceDescriptorProto(name="Thing", method=[_method_with(codes)])],
    )
    pool.Add(thing)
    method = pool.FindServiceByName("thing.v1.Thing").methods_by_name["Get"]
    with pytest.raises(ContractError) as raised:
        declared_codes(method)
    assert str(raised.value).startswith("thing.v1.Thing.Get: option (kit.v1.may_return) ")
    assert problem in str(raised.value)


def test_every_rpc_of_the_kits_contracts_declares_its_codes() -> None:
    from auth.v1 import auth_pb2

    for module in (auth_pb2, user_pb2, dummy_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                declared = declared_codes(method)
                assert declared is not None, method.full_name
                assert {StatusCode.INVALID_ARGUMENT, StatusCode.UNAVAILABLE} <= declared
                assert not declared & {StatusCode.UNKNOWN, StatusCode.INTERNAL}


# -- mocks held to it --------------------------------------------------------------------


@pytest.fixture
def users() -> UserMock:
    return GrpcMock.of(user_pb2_grpc.UserServiceStub)


def test_fails_refuses_a_code_the_rpc_does_not_declare(users: UserMock) -> None:
    with pytest.raises(MockError) as raised:
        users.when(lambda stub: stub.GetUser).fails(StatusCode.ALREADY_EXISTS, "taken")
    message = str(raised.value)
    assert message.startswith(
        "fails(): user.v1.UserService.GetUser does not declare ALREADY_EXISTS: its "
        "(kit.v1.may_return) lists INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE."
    )
    assert "pass breaks_contract=True" in message


@pytest.mark.parametrize(
    ("rpc", "code", "accepted"),
    [
        ("GetUser", StatusCode.NOT_FOUND, True),
        ("GetUser", StatusCode.UNAVAILABLE, True),
        ("GetUser", StatusCode.DEADLINE_EXCEEDED, True),  # the caller's deadline
        ("GetUser", StatusCode.CANCELLED, True),  # the caller's cancellation
        ("CreateUser", StatusCode.ALREADY_EXISTS, True),
        ("CreateUser", StatusCode.NOT_FOUND, False),
        ("GetUser", StatusCode.PERMISSION_DENIED, False),
        ("GetUser", StatusCode.UNKNOWN, False),
        ("GetUser", StatusCode.INTERNAL, False),
    ],
    ids=lambda value: value.name if isinstance(value, StatusCode) else None,
)
def test_fails_takes_what_the_rpc_declares(
    users: UserMock, rpc: str, code: StatusCode, accepted: bool
) -> None:
    behaviour = users.when(lambda stub: getattr(stub, rpc))
    if accepted:
        behaviour.fails(code)
    else:
        with pytest.raises(MockError, match=f"{rpc} does not declare {code.name}"):
            behaviour.fails(code)
    assert users.declared_codes(lambda stub: getattr(stub, rpc)) == declared_codes(
        user_pb2.DESCRIPTOR.services_by_name["UserService"].methods_by_name[rpc]
    )


def test_breaks_contract_lets_any_error_code_through_but_ok(users: UserMock) -> None:
    for code in set(StatusCode) - {StatusCode.OK}:
        users.when(lambda stub: stub.GetUser).fails(code, breaks_contract=True)
    with pytest.raises(MockError, match="OK is not a failure"):
        users.when(lambda stub: stub.GetUser).fails(StatusCode.OK, breaks_contract=True)


def test_without_the_option_any_code_but_unknown_and_internal() -> None:
    health: GrpcMock[object] = GrpcMock(health_pb2.DESCRIPTOR.services_by_name["Health"])
    health.when(lambda stub: stub.Check).fails(StatusCode.PERMISSION_DENIED)  # type: ignore[attr-defined]
    with pytest.raises(MockError) as raised:
        health.when(lambda stub: stub.Check).fails(StatusCode.INTERNAL)  # type: ignore[attr-defined]
    assert (
        "grpc.health.v1.Health.Check does not declare INTERNAL: it has no (kit.v1.may_return) "
        "option and no contract promises INTERNAL"
    ) in str(raised.value)


def refuses_by_breaking(call: Call[user_pb2.GetUserRequest]) -> user_pb2.GetUserResponse:
    raise Abort(StatusCode.PERMISSION_DENIED, "not yours", breaks_contract=True)


def refuses(call: Call[user_pb2.GetUserRequest]) -> user_pb2.GetUserResponse:
    raise Abort(StatusCode.PERMISSION_DENIED, "not yours")


async def test_abort_is_held_to_the_contract_too(users: UserMock) -> None:
    users.when(lambda stub: stub.GetUser).responds(refuses).then().responds(refuses_by_breaking)
    async with users.channel() as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        codes = []
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.GetUser(user_pb2.GetUserRequest(id=USER_ID))
            codes.append(raised.value.code())
    assert codes == [StatusCode.UNKNOWN, StatusCode.PERMISSION_DENIED]
    assert len(users.errors) == 1
    assert "GetUser does not declare PERMISSION_DENIED" in users.errors[0]


# -- providers held to it ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code", "deadline_passed", "broken"),
    [
        ("/user.v1.UserService/GetUser", StatusCode.NOT_FOUND, False, False),
        ("/user.v1.UserService/GetUser", StatusCode.ALREADY_EXISTS, False, True),
        ("/user.v1.UserService/GetUser", StatusCode.INTERNAL, False, True),
        ("/user.v1.UserService/GetUser", StatusCode.DEADLINE_EXCEEDED, True, False),
        ("/user.v1.UserService/GetUser", StatusCode.DEADLINE_EXCEEDED, False, True),
        ("/user.v1.UserService/GetUser", StatusCode.CANCELLED, False, False),
        ("/grpc.health.v1.Health/Check", StatusCode.NOT_FOUND, False, False),
        ("/grpc.health.v1.Health/Check", StatusCode.INTERNAL, False, True),
        ("/no.such.Service/Call", StatusCode.INTERNAL, False, False),
    ],
    ids=[
        "declared",
        "undeclared",
        "internal",
        "own deadline",
        "deadline not reached: the provider's",
        "cancelled",
        "no option",
        "no option, internal",
        "unknown to this process",
    ],
)
def test_which_answers_break_a_contract(
    path: str, code: StatusCode, deadline_passed: bool, broken: bool
) -> None:
    assert (undeclared_status(path, code, deadline_passed=deadline_passed) is not None) is broken


@pytest.fixture
async def provider(users: UserMock) -> AsyncIterator[user_pb2_grpc.UserServiceAsyncStub]:
    """The mock standing in for a real user service, through a checked channel."""
    async with users.channel(), checked_channel(users.address) as channel:
        yield user_pb2_grpc.UserServiceStub(channel)


async def test_an_undeclared_answer_fails_naming_rpc_code_and_request(
    users: UserMock, provider: user_pb2_grpc.UserServiceAsyncStub
) -> None:
    users.when(lambda stub: stub.GetUser).fails(
        StatusCode.PERMISSION_DENIED, "not yours", breaks_contract=True
    )
    with pytest.raises(UndeclaredStatusError) as raised:
        await provider.GetUser(user_pb2.GetUserRequest(id=USER_ID))
    # Not an RpcError: a test expecting some error (pytest.raises(AioRpcError)) fails too.
    assert not isinstance(raised.value, grpc.RpcError)
    assert str(raised.value) == (
        "user.v1.UserService/GetUser answered PERMISSION_DENIED ('not yours'), which it does "
        "not declare: its (kit.v1.may_return) lists INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE.\n"
        f'  the request: user.v1.GetUserRequest {{ id: "{USER_ID}" }}\n'
        "  Either the service is wrong (fix it), or its contract is (add the code to the RPC's "
        "(kit.v1.may_return) option and tell its consumers)."
    )
    assert isinstance(raised.value, AssertionError)


async def test_declared_answers_and_own_deadlines_pass_through_unchanged(
    users: UserMock, provider: user_pb2_grpc.UserServiceAsyncStub
) -> None:
    users.when(lambda stub: stub.GetUser).fails(
        StatusCode.NOT_FOUND, "no such user", trailing_metadata=(("kit-outcome", "failed"),)
    ).then().returns(user_pb2.GetUserResponse(user=user_pb2.User(id=USER_ID))).then().delays(
        2
    ).returns(user_pb2.GetUserResponse())
    request = user_pb2.GetUserRequest(id=USER_ID)
    call = provider.GetUser(request)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() is StatusCode.NOT_FOUND
    assert ("kit-outcome", "failed") in tuple(await call.trailing_metadata() or ())
    assert (await provider.GetUser(request)).user.id == USER_ID
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await provider.GetUser(request, timeout=0.2)
    assert late.value.code() is StatusCode.DEADLINE_EXCEEDED
