"""Every RPC of every service, fed hostile input: never UNKNOWN, never INTERNAL.

Generated from the services' descriptors, so a new RPC or field is covered without
writing a case: each string field gets NUL characters, a 64 KiB string and odd
Unicode; each number its extremes; each enum an undefined value; and every method
gets bytes that are not a message at all. Any answer is fine (OK included) but a
server error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from auth.v1 import auth_pb2
from dummy.v1 import dummy_pb2
from fixtures.inprocess import NewOwner
from user.v1 import user_pb2

SERVER_ERRORS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
SERVICES: dict[str, ServiceDescriptor] = {
    "auth": auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    "user": user_pb2.DESCRIPTOR.services_by_name["UserService"],
    "dummy": dummy_pb2.DESCRIPTOR.services_by_name["DummyService"],
}
HOSTILE_STRINGS = {
    "nul": "a\x00b",
    "only nul": "\x00",
    "64 KiB": "x" * 65536,
    "odd unicode": "\u202e\ufeff\U0001f600\udcff".encode("utf-8", "surrogatepass").decode(
        "utf-8", "replace"
    ),
    "uuid with nul": "00000000-0000-4000-8000-000000000001\x00",
    "sql": "'; DROP TABLE users; --",
}
HOSTILE_INTS = {"min int32": -(2**31), "max int32": 2**31 - 1, "minus one": -1}
NOT_A_MESSAGE = {
    "truncated varint": b"\x08\xff",
    "invalid utf-8 in field 1": b"\x0a\x02\xc3\x28",
    "wrong wire type": b"\x0d\x00\x00",
    "garbage": bytes(range(256)),
}


SOMEONE = "00000000-0000-4000-8000-000000000001"
WELL_FORMED_TOKEN = "a" * 24 + "." + "b" * 43
# One well-formed request per RPC: each hostile value replaces one field of it, so that
# it gets past the checks of the other fields and reaches storage or the provider.
WELL_FORMED: dict[str, Message] = {
    "CreateSession": auth_pb2.CreateSessionRequest(user_id=SOMEONE),
    "ValidateSession": auth_pb2.ValidateSessionRequest(token=WELL_FORMED_TOKEN),
    "DeleteSession": auth_pb2.DeleteSessionRequest(token=WELL_FORMED_TOKEN),
    "StartOauthLogin": auth_pb2.StartOauthLoginRequest(provider=auth_pb2.PROVIDER_GITHUB),
    "HandleOauthCallback": auth_pb2.HandleOauthCallbackRequest(
        provider=auth_pb2.PROVIDER_GITHUB,
        code="code",
        state="state",
        expected_state="state",
        code_verifier="v" * 43,
    ),
    "LinkOauthAccount": auth_pb2.LinkOauthAccountRequest(
        provider=auth_pb2.PROVIDER_GOOGLE, provider_user_id="42", user_id=SOMEONE
    ),
    "GetOauthAccount": auth_pb2.GetOauthAccountRequest(
        provider=auth_pb2.PROVIDER_GOOGLE, provider_user_id="42"
    ),
    "CreateUser": user_pb2.CreateUserRequest(
        email="ann@example.com", name="Ann", avatar_url="https://example.com/a.png"
    ),
    "GetUser": user_pb2.GetUserRequest(id=SOMEONE),
    "GetUserByEmail": user_pb2.GetUserByEmailRequest(email="ann@example.com"),
    "CreateEntity": dummy_pb2.CreateEntityRequest(owner_id=SOMEONE, name="n", request_id=SOMEONE),
    "GetEntity": dummy_pb2.GetEntityRequest(owner_id=SOMEONE, id=SOMEONE),
    "ListEntities": dummy_pb2.ListEntitiesRequest(owner_id=SOMEONE, page_size=10),
    "UpdateEntity": dummy_pb2.UpdateEntityRequest(
        owner_id=SOMEONE, id=SOMEONE, name="n", description="d"
    ),
    "DeleteEntity": dummy_pb2.DeleteEntityRequest(owner_id=SOMEONE, id=SOMEONE),
}


def test_every_rpc_has_a_well_formed_request() -> None:
    methods = {m.name for service in SERVICES.values() for m in service.methods}
    assert methods == set(WELL_FORMED), "add the new RPC to WELL_FORMED"


def hostile_requests(method: MethodDescriptor, owner_id: str) -> Iterator[tuple[str, Message]]:
    base = GetMessageClass(method.input_type)()
    base.CopyFrom(WELL_FORMED[method.name])
    if "owner_id" in method.input_type.fields_by_name:
        # a real user, so that CreateEntity gets past the owner check to storage
        setattr(base, "owner_id", owner_id)  # noqa: B010 - a generic Message here
    for field in method.input_type.fields:
        values: dict[str, Any]
        if field.type == FieldDescriptor.TYPE_STRING:
            values = HOSTILE_STRINGS
        elif field.type == FieldDescriptor.TYPE_INT32:
            values = HOSTILE_INTS
        elif field.type == FieldDescriptor.TYPE_ENUM:
            values = {"undefined enum": 99}
        else:
            continue
        for name, value in values.items():
            spoiled = GetMessageClass(method.input_type)()
            spoiled.CopyFrom(base)
            setattr(spoiled, field.name, value)
            yield f"{field.name}={name}", spoiled


@pytest.fixture
def channels(contract_channels: dict[str, grpc.aio.Channel]) -> dict[str, grpc.aio.Channel]:
    """A channel to each implementation under test (on the contract target), over empty
    databases."""
    return contract_channels


def call(channel: grpc.aio.Channel, service: ServiceDescriptor, method: MethodDescriptor) -> Any:
    return channel.unary_unary(
        f"/{service.full_name}/{method.name}",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )


async def status_of(rpc: Any, payload: bytes) -> tuple[grpc.StatusCode, str]:
    try:
        await rpc(payload, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("service_name", SERVICES)
async def test_hostile_fields_never_get_a_server_error(
    channels: dict[str, grpc.aio.Channel], new_owner: NewOwner, service_name: str
) -> None:
    service = SERVICES[service_name]
    owner_id = await new_owner()
    server_errors = []
    for method in service.methods:
        rpc = call(channels[service_name], service, method)
        for what, message in hostile_requests(method, owner_id):
            code, details = await status_of(rpc, message.SerializeToString())
            if code in SERVER_ERRORS:
                server_errors.append(f"{method.name}({what}): {code.name} {details}")
    assert server_errors == []


@pytest.mark.parametrize("service_name", SERVICES)
async def test_bytes_that_are_not_a_message_are_invalid_argument(
    channels: dict[str, grpc.aio.Channel], service_name: str
) -> None:
    service = SERVICES[service_name]
    for method in service.methods:
        rpc = call(channels[service_name], service, method)
        for what, payload in NOT_A_MESSAGE.items():
            code, details = await status_of(rpc, payload)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{method.name}({what}): {details}"
