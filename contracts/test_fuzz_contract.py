"""Every service, fuzzed from its contract: each answer is a status the RPC declares.

Requests are generated from the descriptors (contracts/fuzzing.py): any value the wire
allows in every field, mixed with valid values (a real owner, entity, session token,
page token...) so that requests get past their first check and reach storage. An
answer outside the RPC's declared codes (UNKNOWN and INTERNAL are never declared)
fails the test with the request Hypothesis shrank it to. ``FUZZ_SEED`` and
``FUZZ_EXAMPLES`` reproduce a run (README, "Contracts").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import given, seed

from auth.v1 import auth_pb2, auth_pb2_grpc
from contracts.fuzzing import (
    FUZZ_SEED,
    KNOWN_DEFECTS,
    SERVICES,
    fuzz_service,
    fuzz_settings,
    message_values,
    rpc_status_codes,
)
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from fixtures.inprocess import NewOwner
from user.v1 import user_pb2, user_pb2_grpc

Known = dict[str, list[str]]


async def known_auth(channel: grpc.aio.Channel, new_owner: NewOwner) -> Known:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    user_id = await new_owner()
    session = await stub.CreateSession(auth_pb2.CreateSessionRequest(user_id=user_id))
    await stub.LinkOauthAccount(
        auth_pb2.LinkOauthAccountRequest(
            provider=auth_pb2.PROVIDER_GOOGLE, provider_user_id="fuzz-42", user_id=user_id
        )
    )
    return {
        "user_id": [user_id],
        "token": [session.token],
        "provider_user_id": ["fuzz-42"],
        "code": ["code"],
        "state": ["state"],
        "expected_state": ["state"],
        "code_verifier": ["v" * 43],
    }


async def known_user(channel: grpc.aio.Channel, new_owner: NewOwner) -> Known:
    stub = user_pb2_grpc.UserServiceStub(channel)
    created = await stub.CreateUser(
        user_pb2.CreateUserRequest(email="fuzz@example.com", name="Fuzz")
    )
    return {
        "id": [created.user.id],
        "email": ["fuzz@example.com", "Fuzz@EXAMPLE.com"],
        "name": ["Fuzz"],
        "avatar_url": ["https://example.com/a.png"],
    }


async def known_dummy(channel: grpc.aio.Channel, new_owner: NewOwner) -> Known:
    stub = dummy_pb2_grpc.DummyServiceStub(channel)
    owner_id = await new_owner()
    ids = []
    for name in ("one", "two", "three"):
        created = await stub.CreateEntity(
            dummy_pb2.CreateEntityRequest(owner_id=owner_id, name=name)
        )
        ids.append(created.entity.id)
    page = await stub.ListEntities(dummy_pb2.ListEntitiesRequest(owner_id=owner_id, page_size=1))
    return {
        "owner_id": [owner_id],
        "id": ids,
        "request_id": [ids[0]],
        "page_token": [page.next_page_token],
        "name": ["name"],
        "description": ["a description\nof two lines"],
    }


KNOWN_VALUES: dict[str, Callable[[grpc.aio.Channel, NewOwner], Awaitable[Known]]] = {
    "auth": known_auth,
    "user": known_user,
    "dummy": known_dummy,
}


@pytest.fixture
def channels(contract_channels: dict[str, grpc.aio.Channel]) -> dict[str, grpc.aio.Channel]:
    """A channel to each implementation under test (on the contract target), over empty
    databases."""
    return contract_channels


def test_every_rpc_declares_the_codes_it_may_answer() -> None:
    """The table the fuzzer checks against, read from each RPC's (kit.v1.may_return):
    every RPC may answer OK, INVALID_ARGUMENT and UNAVAILABLE, none UNKNOWN or INTERNAL,
    and a code one RPC declares (CreateEntity's FAILED_PRECONDITION) only that one."""
    always = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE}
    for name, service in SERVICES.items():
        table = rpc_status_codes(name)
        assert set(table) == {method.name for method in service.methods}
        for rpc, codes in table.items():
            assert always <= codes, rpc
            assert not codes & {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}, rpc
    dummy = rpc_status_codes("dummy")
    assert grpc.StatusCode.FAILED_PRECONDITION in dummy["CreateEntity"]
    assert grpc.StatusCode.FAILED_PRECONDITION not in dummy["GetEntity"]
    assert grpc.StatusCode.ALREADY_EXISTS not in rpc_status_codes("user")["GetUser"]


def test_the_strategies_fill_repeated_nested_and_timestamp_fields() -> None:
    """No request has them today; a response message does: repeated entities, each with
    timestamps. Every drawn message serializes, and the limits of Timestamp come up."""
    seen_seconds: set[int] = set()
    seen_entities: set[int] = set()

    @seed(FUZZ_SEED)
    @fuzz_settings(300)
    @given(message_values(dummy_pb2.ListEntitiesResponse.DESCRIPTOR, {}))
    def serializes(message: Message) -> None:
        assert isinstance(message, dummy_pb2.ListEntitiesResponse)
        message.SerializeToString()
        seen_entities.add(len(message.entities))
        seen_seconds.update(entity.create_time.seconds for entity in message.entities)

    serializes()
    assert max(seen_entities) > 1
    assert {-62135596800, 253402300799} & seen_seconds, "the limits of Timestamp"
    assert {-62135596801, 253402300800} & seen_seconds, "beyond the limits of Timestamp"


@pytest.mark.parametrize("service_name", SERVICES)
async def test_every_answer_is_a_status_the_contract_declares(
    channels: dict[str, grpc.aio.Channel], new_owner: NewOwner, service_name: str
) -> None:
    channel = channels[service_name]
    known = await KNOWN_VALUES[service_name](channel, new_owner)
    known_findings = await fuzz_service(channel, service_name, known)
    if known_findings:
        pytest.xfail(
            "known defects found: "
            + "; ".join(
                f"{KNOWN_DEFECTS[key]}: {finding}" for key, finding in known_findings.items()
            )
        )


async def spoiled_by_escape(
    request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
) -> bytes:
    """A user service answering INTERNAL when a request holds ESC, INVALID_ARGUMENT (which
    every RPC declares) otherwise: what the fuzzer must catch."""
    if b"\x1b" in request:
        await context.abort(grpc.StatusCode.INTERNAL, "spoiled")
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "email: not an address")


async def test_the_fuzzer_reports_an_undeclared_status_with_its_request() -> None:
    server = grpc.aio.server()
    users = SERVICES["user"]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(spoiled_by_escape)
        for method in users.methods
    }
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(users.full_name, handlers)]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(AssertionError) as raised:
                await fuzz_service(channel, "user", {}, max_examples=200)
    finally:
        await server.stop(grace=0)
    report = str(raised.value)
    assert "-> INTERNAL: spoiled" in report
    assert "\\x1b" in report, "the shrunk request is shown"
    assert f"FUZZ_SEED={FUZZ_SEED}" in report
