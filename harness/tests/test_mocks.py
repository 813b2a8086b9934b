"""harness.mocks with the real generated messages of dummy, user and auth."""

from __future__ import annotations

import asyncio
import json
import operator
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, cast

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from harness import (
    Abort,
    Call,
    GrpcMock,
    GrpcMocks,
    Metadata,
    MockError,
    MockVerificationError,
    UnknownRpcError,
)
from user.v1 import user_pb2, user_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from google.protobuf.descriptor import ServiceDescriptor

    from dummy.v1.dummy_pb2_grpc import DummyServiceAsyncStub

    DummyMock: TypeAlias = GrpcMock[DummyServiceAsyncStub]

REPO = Path(__file__).resolve().parents[2]
StatusCode = grpc.StatusCode

OWNER = "7b3f6a52-2c1e-4f7a-9d55-0c3b1e8f4a10"
ENTITY = dummy_pb2.Entity(id="5d0c2b7e-1111-4c3e-8a3a-2f4b6c8d9e0f", owner_id=OWNER, name="a")
GET = dummy_pb2.GetEntityRequest(owner_id=OWNER, id=ENTITY.id)
FOUND = dummy_pb2.GetEntityResponse(entity=ENTITY)


@pytest.fixture
def mock() -> DummyMock:
    return GrpcMock.of(dummy_pb2_grpc.DummyServiceStub)


@pytest.fixture
async def stub(mock: DummyMock) -> AsyncIterator[dummy_pb2_grpc.DummyServiceAsyncStub]:
    async with mock.channel() as channel:
        yield dummy_pb2_grpc.DummyServiceStub(channel)


async def outcome_of(
    stub: DummyServiceAsyncStub, request: dummy_pb2.GetEntityRequest = GET, **kwargs: Any
) -> Message | tuple[grpc.StatusCode, str]:
    """The response, or the error status and details, of one GetEntity call."""
    try:
        return await stub.GetEntity(request, **kwargs)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""


# -- one mock for any service -----------------------------------------------------------


@pytest.mark.parametrize(
    ("stub_class", "module", "service"),
    [
        (dummy_pb2_grpc.DummyServiceStub, dummy_pb2, "DummyService"),
        (user_pb2_grpc.UserServiceStub, user_pb2, "UserService"),
        (auth_pb2_grpc.AuthServiceStub, auth_pb2, "AuthService"),
    ],
    ids=["dummy", "user", "auth"],
)
async def test_every_rpc_of_any_service_answers_unimplemented_until_programmed(
    stub_class: Callable[[grpc.aio.Channel], Any], module: Any, service: str
) -> None:
    descriptor: ServiceDescriptor = module.DESCRIPTOR.services_by_name[service]
    mock = GrpcMock.of(stub_class)
    assert mock.service_name == descriptor.full_name
    assert mock.rpc_names == tuple(method.name for method in descriptor.methods)
    async with mock.channel() as channel:
        for method in descriptor.methods:
            request_class = message_factory.GetMessageClass(method.input_type)
            call = channel.unary_unary(
                f"/{descriptor.full_name}/{method.name}",
                request_serializer=request_class.SerializeToString,
                response_deserializer=message_factory.GetMessageClass(
                    method.output_type
                ).FromString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request_class())
            assert caught.value.code() is StatusCode.UNIMPLEMENTED
            assert caught.value.details() == (
                f"harness.mocks: {descriptor.full_name}.{method.name} was not programmed; "
                f"program it with mock.when(lambda stub: stub.{method.name})"
            )
    assert [call.rpc for call in mock.all_calls()] == list(mock.rpc_names)


# -- outcomes -------------------------------------------------------------------------


Expected: TypeAlias = Message | tuple[grpc.StatusCode, str]


async def echo_owner(call: Call[dummy_pb2.GetEntityRequest]) -> dummy_pb2.GetEntityResponse:
    await asyncio.sleep(0)
    return dummy_pb2.GetEntityResponse(entity=dummy_pb2.Entity(owner_id=call.request.owner_id))


def broken(call: Call[Any]) -> NoReturn:
    raise KeyError("missing")


def found_unless_unknown(call: Call[dummy_pb2.GetEntityRequest]) -> dummy_pb2.GetEntityResponse:
    if call.request.id != ENTITY.id:
        raise Abort(StatusCode.NOT_FOUND, f"no entity {call.request.id}")
    return FOUND


@dataclass(frozen=True)
class OutcomeCase:
    id: str
    program: Callable[[DummyMock], object]
    expected: list[Expected]  # what successive GetEntity(GET) calls get
    request: dummy_pb2.GetEntityRequest | None = None  # default: GET


OUTCOMES = [
    OutcomeCase(
        "returns",
        lambda mock: mock.when(lambda stub: stub.GetEntity).returns(FOUND),
        [FOUND, FOUND],
    ),
    OutcomeCase(
        "responds sync from the request",
        lambda mock: mock.when(lambda stub: stub.GetEntity).responds(
            lambda call: dummy_pb2.GetEntityResponse(entity=dummy_pb2.Entity(id=call.request.id))
        ),
        [dummy_pb2.GetEntityResponse(entity=dummy_pb2.Entity(id=ENTITY.id))],
    ),
    OutcomeCase(
        "responds async",
        lambda mock: mock.when(lambda stub: stub.GetEntity).responds(echo_owner),
        [dummy_pb2.GetEntityResponse(entity=dummy_pb2.Entity(owner_id=OWNER))],
    ),
    OutcomeCase(
        "responds from the metadata",
        lambda mock: mock.when(lambda stub: stub.GetEntity).responds(
            lambda call: dummy_pb2.GetEntityResponse(
                entity=dummy_pb2.Entity(name=str(call.metadata_value("x-caller")))
            )
        ),
        [dummy_pb2.GetEntityResponse(entity=dummy_pb2.Entity(name="gateway"))],
    ),
    OutcomeCase(
        "responds raises Abort",
        lambda mock: mock.when(lambda stub: stub.GetEntity).responds(found_unless_unknown),
        [(StatusCode.NOT_FOUND, "no entity other")],
        request=dummy_pb2.GetEntityRequest(owner_id=OWNER, id="other"),
    ),
    OutcomeCase(
        "fails",
        lambda mock: mock.when(lambda stub: stub.GetEntity).fails(
            StatusCode.NOT_FOUND, "no such entity"
        ),
        [(StatusCode.NOT_FOUND, "no such entity"), (StatusCode.NOT_FOUND, "no such entity")],
    ),
    OutcomeCase(
        "fails once then returns",
        lambda mock: (
            mock.when(lambda stub: stub.GetEntity)
            .fails(StatusCode.UNAVAILABLE, "storage down")
            .then()
            .returns(FOUND)
        ),
        [(StatusCode.UNAVAILABLE, "storage down"), FOUND, FOUND],
    ),
    OutcomeCase(
        "times then the next step",
        lambda mock: (
            mock.when(lambda stub: stub.GetEntity)
            .fails(StatusCode.UNAVAILABLE, "down")
            .times(2)
            .then()
            .returns(FOUND)
        ),
        [(StatusCode.UNAVAILABLE, "down"), (StatusCode.UNAVAILABLE, "down"), FOUND],
    ),
    OutcomeCase(
        "used up",
        lambda mock: mock.when(lambda stub: stub.GetEntity).returns(FOUND).times(1),
        [FOUND, (StatusCode.UNIMPLEMENTED, "its programmed answers are used up")],
    ),
    OutcomeCase(
        "when without outcome",
        lambda mock: mock.when(lambda stub: stub.GetEntity).delays(0.01),
        [(StatusCode.UNIMPLEMENTED, "was programmed with when() but no outcome")],
    ),
    OutcomeCase(
        "the latest when() wins",
        lambda mock: (
            mock.when(lambda stub: stub.GetEntity).fails(StatusCode.NOT_FOUND),
            mock.when(lambda stub: stub.GetEntity).returns(FOUND),
        ),
        [FOUND],
    ),
]


@pytest.mark.parametrize("case", OUTCOMES, ids=[case.id for case in OUTCOMES])
async def test_programmed_outcomes(
    mock: DummyMock, stub: DummyServiceAsyncStub, case: OutcomeCase
) -> None:
    case.program(mock)
    received = []
    for _ in case.expected:
        received.append(
            await outcome_of(stub, case.request or GET, metadata=(("x-caller", "gateway"),))
        )
    for got, expected in zip(received, case.expected, strict=True):
        if isinstance(expected, Message):
            assert got == expected
        else:
            assert isinstance(got, tuple)
            assert got[0] is expected[0]
            assert expected[1] in got[1]
    assert len(mock.calls(lambda stub: stub.GetEntity)) == len(case.expected)
    assert mock.errors == []


async def test_fails_sends_trailing_metadata(mock: DummyMock, stub: DummyServiceAsyncStub) -> None:
    mock.when(lambda stub: stub.GetEntity).fails(
        StatusCode.NOT_FOUND, "gone", trailing_metadata=(("x-reason", "deleted"), ("x-bin", b"\1"))
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetEntity(GET)
    # grpc-stubs types these as _Metadatum; grpc.aio gives (key, value) tuples
    trailing = cast("Metadata", caught.value.trailing_metadata())
    assert ("x-reason", "deleted") in tuple(trailing)
    assert ("x-bin", b"\1") in tuple(trailing)


async def test_returns_copies_the_response(mock: DummyMock, stub: DummyServiceAsyncStub) -> None:
    response = dummy_pb2.GetEntityResponse(entity=dummy_pb2.Entity(name="before"))
    mock.when(lambda stub: stub.GetEntity).returns(response)
    response.entity.name = "after"
    assert (await stub.GetEntity(GET)).entity.name == "before"


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        (lambda behaviour: behaviour.returns(FOUND), FOUND),
        (lambda behaviour: behaviour.fails(StatusCode.NOT_FOUND, "x"), StatusCode.NOT_FOUND),
    ],
    ids=["returns", "fails"],
)
async def test_delays_before_answering(
    mock: DummyMock,
    stub: DummyServiceAsyncStub,
    program: Callable[[Any], object],
    expected: Message | grpc.StatusCode,
) -> None:
    program(mock.when(lambda stub: stub.GetEntity).delays(0.3))
    started = time.monotonic()
    got = await outcome_of(stub)
    assert time.monotonic() - started >= 0.3
    assert got == expected if isinstance(expected, Message) else got[0] is expected  # type: ignore[index]


async def test_a_deadline_shorter_than_the_delay_is_exceeded(
    mock: DummyMock, stub: DummyServiceAsyncStub
) -> None:
    mock.when(lambda stub: stub.GetEntity).delays(5).returns(FOUND)
    started = time.monotonic()
    got = await outcome_of(stub, timeout=0.2)
    assert got[0] is StatusCode.DEADLINE_EXCEEDED  # type: ignore[index]
    assert time.monotonic() - started < 5
    assert len(mock.calls(lambda stub: stub.GetEntity)) == 1  # recorded on arrival


async def test_an_async_responder_runs_on_the_loop_that_programmed_it(
    mock: DummyMock, stub: DummyServiceAsyncStub
) -> None:
    # The server runs on the mock's own loop; the Event belongs to the test's.
    released = asyncio.Event()

    async def wait_for_release(
        call: Call[dummy_pb2.GetEntityRequest],
    ) -> dummy_pb2.GetEntityResponse:
        await released.wait()
        return FOUND

    mock.when(lambda stub: stub.GetEntity).responds(wait_for_release)
    pending = asyncio.ensure_future(stub.GetEntity(GET))
    await asyncio.sleep(0.1)
    assert not pending.done()
    released.set()
    assert await asyncio.wait_for(pending, 5) == FOUND


@pytest.mark.parametrize(
    ("responder", "problem"),
    [
        (
            lambda call: dummy_pb2.CreateEntityResponse(),
            "GetEntity answers dummy.v1.GetEntityResponse, not dummy.v1.CreateEntityResponse",
        ),
        (broken, "raised KeyError('missing')"),
        (
            lambda call: (_ for _ in ()).throw(Abort(StatusCode.INTERNAL, "boom")),
            "does not declare INTERNAL",
        ),
    ],
    ids=["wrong response type", "raises", "aborts with a forbidden code"],
)
async def test_a_broken_responder_is_answered_unknown_and_kept_in_errors(
    mock: DummyMock, stub: DummyServiceAsyncStub, responder: Any, problem: str
) -> None:
    mock.when(lambda stub: stub.GetEntity).responds(responder)
    code, details = await outcome_of(stub)  # type: ignore[misc]
    assert code is StatusCode.UNKNOWN
    assert problem in details
    assert len(mock.errors) == 1
    assert problem in mock.errors[0]
    with pytest.raises(MockVerificationError, match="errors while answering"):
        mock.assert_no_errors()


async def test_a_request_that_does_not_parse_is_invalid_argument(mock: DummyMock) -> None:
    async with mock.channel() as channel:
        raw = channel.unary_unary("/dummy.v1.DummyService/GetEntity", None, None)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(b"\xff\xff\xff")
    assert caught.value.code() is StatusCode.INVALID_ARGUMENT
    assert "not a valid dummy.v1.GetEntityRequest" in (caught.value.details() or "")


# -- programming mistakes are refused at once ---------------------------------------------


def test_an_unknown_rpc_is_refused_listing_the_rpcs(mock: DummyMock) -> None:
    listed = "CreateEntity, DeleteEntity, GetEntity, ListEntities, UpdateEntity"
    for use in (mock.when, mock.calls, mock.verify):
        with pytest.raises(UnknownRpcError) as caught:
            use(lambda stub: stub.NoSuchRpc)  # type: ignore[attr-defined]
        assert str(caught.value) == f"DummyService has no RPC 'NoSuchRpc'; its RPCs: {listed}"
        assert isinstance(caught.value, AttributeError)
        assert isinstance(caught.value, MockError)


MISTAKES: list[tuple[str, Callable[[DummyMock], object], str]] = [
    (
        "response of another RPC",
        lambda mock: mock.when(lambda s: s.GetEntity).returns(
            dummy_pb2.CreateEntityResponse()  # type: ignore[arg-type]
        ),
        "GetEntity answers dummy.v1.GetEntityResponse, not dummy.v1.CreateEntityResponse",
    ),
    (
        "response of another service",
        lambda mock: mock.when(lambda s: s.GetEntity).returns(
            user_pb2.GetUserResponse()  # type: ignore[arg-type]
        ),
        "not user.v1.GetUserResponse",
    ),
    (
        "not a message",
        lambda mock: mock.when(lambda s: s.GetEntity).returns({"entity": {}}),  # type: ignore[arg-type]
        "not dict",
    ),
    (
        "fails with OK",
        lambda mock: mock.when(lambda s: s.GetEntity).fails(StatusCode.OK),
        "OK is not a failure",
    ),
    (
        "fails with UNKNOWN",
        lambda mock: mock.when(lambda s: s.GetEntity).fails(StatusCode.UNKNOWN),
        "GetEntity does not declare UNKNOWN: its (kit.v1.may_return) lists INVALID_ARGUMENT, "
        "NOT_FOUND, UNAVAILABLE",
    ),
    (
        "fails with INTERNAL",
        lambda mock: mock.when(lambda s: s.GetEntity).fails(StatusCode.INTERNAL),
        "does not declare INTERNAL",
    ),
    (
        "fails with a number",
        lambda mock: mock.when(lambda s: s.GetEntity).fails(5),  # type: ignore[arg-type]
        "expected a grpc.StatusCode",
    ),
    (
        "bad trailing metadata key",
        lambda mock: mock.when(lambda s: s.GetEntity).fails(
            StatusCode.NOT_FOUND, trailing_metadata=(("X-Upper", "v"),)
        ),
        "not a valid metadata key",
    ),
    (
        "str value for a -bin key",
        lambda mock: mock.when(lambda s: s.GetEntity).fails(
            StatusCode.NOT_FOUND, trailing_metadata=(("x-bin", "v"),)
        ),
        "must be bytes",
    ),
    (
        "two outcomes in one step",
        lambda mock: mock.when(lambda s: s.GetEntity).returns(FOUND).fails(StatusCode.NOT_FOUND),
        "this step already returns(GetEntityResponse); use .then()",
    ),
    (
        "then() without an outcome",
        lambda mock: mock.when(lambda s: s.GetEntity).delays(1).then(),
        "then() after a step with no outcome",
    ),
    (
        "times(0)",
        lambda mock: mock.when(lambda s: s.GetEntity).returns(FOUND).times(0),
        "times() takes a count >= 1",
    ),
    (
        "negative delay",
        lambda mock: mock.when(lambda s: s.GetEntity).delays(-1),
        "delays() takes a number of seconds >= 0",
    ),
    (
        "selector calls the RPC",
        lambda mock: mock.when(lambda s: s.GetEntity(GET)),  # type: ignore[arg-type, return-value]
        "select the RPC, do not call it",
    ),
    (
        "selector returns something else",
        lambda mock: mock.when(lambda s: "GetEntity"),  # type: ignore[arg-type, return-value]
        "the selector must return an RPC of the stub",
    ),
    (
        "verify with a request of another RPC",
        lambda mock: mock.verify(lambda s: s.GetEntity).called_once_with(
            dummy_pb2.DeleteEntityRequest()  # type: ignore[arg-type]
        ),
        "GetEntity takes dummy.v1.GetEntityRequest, not dummy.v1.DeleteEntityRequest",
    ),
]


@pytest.mark.parametrize(
    ("program", "message"),
    [(program, message) for _, program, message in MISTAKES],
    ids=[name for name, _, _ in MISTAKES],
)
def test_programming_mistakes_are_refused_at_once(
    mock: DummyMock, program: Callable[[DummyMock], object], message: str
) -> None:
    with pytest.raises(MockError, match=None) as caught:
        program(mock)
    assert message in str(caught.value)


# -- recording and verification ---------------------------------------------------------


async def test_calls_are_recorded_with_request_metadata_time_and_peer(
    mock: DummyMock, stub: DummyServiceAsyncStub
) -> None:
    mock.when(lambda stub: stub.GetEntity).returns(FOUND)
    mock.when(lambda stub: stub.CreateEntity).returns(dummy_pb2.CreateEntityResponse())
    before = datetime.now(UTC)
    await stub.GetEntity(GET, metadata=(("x-request-id", "r-1"), ("x-trace-bin", b"\0\1")))
    await stub.CreateEntity(dummy_pb2.CreateEntityRequest(owner_id=OWNER, name="n"))
    after = datetime.now(UTC)

    (call,) = mock.calls(lambda stub: stub.GetEntity)
    assert call.request == GET
    assert isinstance(call.request, dummy_pb2.GetEntityRequest)
    assert call.rpc == "GetEntity"
    assert call.method == "/dummy.v1.DummyService/GetEntity"
    assert call.metadata_value("x-request-id") == "r-1"
    assert call.metadata_value("x-trace-bin") == b"\0\1"
    assert call.metadata_value("absent") is None
    assert ("x-request-id", "r-1") in call.metadata
    assert before <= call.at <= after
    assert call.peer.startswith("ipv4:127.0.0.1:")
    assert [c.rpc for c in mock.all_calls()] == ["GetEntity", "CreateEntity"]


GET_OTHER = dummy_pb2.GetEntityRequest(owner_id=OWNER, id="other")


@pytest.mark.parametrize(
    ("sent", "check"),
    [
        ([], lambda v: v.never_called()),
        ([GET], lambda v: v.called_once()),
        ([GET], lambda v: v.called_once_with(GET)),
        ([GET, GET_OTHER], lambda v: v.called_times(2)),
        ([GET, GET_OTHER], lambda v: v.called_with(GET_OTHER)),
    ],
    ids=["never", "once", "once with", "times", "with"],
)
async def test_verification_passes(
    mock: DummyMock,
    stub: DummyServiceAsyncStub,
    sent: list[dummy_pb2.GetEntityRequest],
    check: Callable[[Any], object],
) -> None:
    mock.when(lambda stub: stub.GetEntity).returns(FOUND)
    for request in sent:
        await stub.GetEntity(request)
    check(mock.verify(lambda stub: stub.GetEntity))


async def test_verification_returns_the_calls(mock: DummyMock, stub: DummyServiceAsyncStub) -> None:
    mock.when(lambda stub: stub.GetEntity).returns(FOUND)
    await stub.GetEntity(GET, metadata=(("authorization", "Bearer t"),))
    call = mock.verify(lambda stub: stub.GetEntity).called_once_with(GET)
    assert call.metadata_value("authorization") == "Bearer t"


REQUEST_BLOCK = f"""\
      GetEntityRequest {{
        owner_id: "{OWNER}"
        id: "{ENTITY.id}"
      }}"""


@pytest.mark.parametrize(
    ("sent", "check", "expectation", "received"),
    [
        ([GET], lambda v: v.never_called(), "expected no call", "received 1 call:"),
        ([], lambda v: v.called_once(), "expected 1 call", "received 0 calls:\n  (none)"),
        ([GET, GET], lambda v: v.called_times(1), "expected 1 call", "received 2 calls:"),
        (
            [GET],
            lambda v: v.called_once_with(GET_OTHER),
            'expected 1 call with\n  GetEntityRequest {\n    owner_id: "',
            "received 1 call:",
        ),
        (
            [GET, GET],
            lambda v: v.called_once_with(GET),
            "expected 1 call with",
            "received 2 calls:",
        ),
        (
            [GET],
            lambda v: v.called_with(dummy_pb2.GetEntityRequest()),
            "expected a call with\n  GetEntityRequest {}",
            "received 1 call:",
        ),
    ],
    ids=["never", "once", "times", "once with another", "once with twice", "with"],
)
async def test_verification_failures_show_the_calls_received(
    mock: DummyMock,
    stub: DummyServiceAsyncStub,
    sent: list[dummy_pb2.GetEntityRequest],
    check: Callable[[Any], object],
    expectation: str,
    received: str,
) -> None:
    mock.when(lambda stub: stub.GetEntity).returns(FOUND)
    for request in sent:
        await stub.GetEntity(request, metadata=(("x-request-id", "r-9"),))
    with pytest.raises(MockVerificationError) as caught:
        check(mock.verify(lambda stub: stub.GetEntity))
    message = str(caught.value)
    assert message.startswith(f"dummy.v1.DummyService.GetEntity: {expectation}")
    assert received in message
    if sent:
        assert "#1 at " in message
        assert "x-request-id='r-9'" in message
        assert REQUEST_BLOCK in message


async def test_a_verification_failure_names_the_other_rpcs_called(
    mock: DummyMock, stub: DummyServiceAsyncStub
) -> None:
    mock.when(lambda stub: stub.DeleteEntity).returns(dummy_pb2.DeleteEntityResponse())
    await stub.DeleteEntity(dummy_pb2.DeleteEntityRequest(owner_id=OWNER, id=ENTITY.id))
    with pytest.raises(MockVerificationError, match="other calls received by the mock: Delete"):
        mock.verify(lambda stub: stub.GetEntity).called_once()


async def test_reset_forgets_programming_calls_and_errors(
    mock: DummyMock, stub: DummyServiceAsyncStub
) -> None:
    mock.when(lambda stub: stub.GetEntity).returns(FOUND)
    mock.when(lambda stub: stub.ListEntities).responds(broken)
    await stub.GetEntity(GET)
    await outcome_of(stub)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.ListEntities(dummy_pb2.ListEntitiesRequest())
    assert mock.errors

    mock.reset()

    assert mock.all_calls() == []
    assert mock.errors == []
    code, details = await outcome_of(stub)  # type: ignore[misc]
    assert code is StatusCode.UNIMPLEMENTED
    assert "was not programmed" in details
    mock.verify(lambda stub: stub.GetEntity).called_once()  # only the call after reset


# -- a service without generated code, with streaming RPCs -----------------------------


def streaming_service() -> ServiceDescriptor:
    """A service built at run time, in a pool of its own: one unary RPC, three streaming."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="harness_tests/streams.proto", package="streams.v1", syntax="proto3"
    )
    ping = proto.message_type.add(name="Ping")
    ping.field.add(
        name="text",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    service = proto.service.add(name="StreamService")
    for name, client, server in [
        ("Echo", False, False),
        ("Watch", False, True),
        ("Upload", True, False),
        ("Chat", True, True),
    ]:
        service.method.add(
            name=name,
            input_type=".streams.v1.Ping",
            output_type=".streams.v1.Ping",
            client_streaming=client,
            server_streaming=server,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool.FindServiceByName("streams.v1.StreamService")


async def test_a_descriptor_only_service_with_streaming_rpcs() -> None:
    descriptor = streaming_service()
    ping = message_factory.GetMessageClass(descriptor.methods_by_name["Echo"].input_type)
    mock: GrpcMock[Any] = GrpcMock(descriptor)
    mock.when(lambda stub: stub.Echo).responds(lambda call: ping(text=call.request.text * 2))
    for name, kind in [("Upload", "client-streaming"), ("Chat", "bidirectional-streaming")]:
        with pytest.raises(MockError, match=f"StreamService.{name} is {kind}; harness.mocks"):
            mock.when(operator.attrgetter(name))

    async with mock.channel() as channel:
        echo = channel.unary_unary(
            "/streams.v1.StreamService/Echo",
            request_serializer=ping.SerializeToString,
            response_deserializer=ping.FromString,
        )
        assert await echo(ping(text="ab")) == ping(text="abab")
        watch = channel.unary_stream(  # server-streaming: programmable, not programmed here
            "/streams.v1.StreamService/Watch",
            request_serializer=ping.SerializeToString,
            response_deserializer=ping.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught_watch:
            async for _ in watch(ping()):
                pass
        upload = channel.stream_unary(
            "/streams.v1.StreamService/Upload",
            request_serializer=ping.SerializeToString,
            response_deserializer=ping.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught_upload:
            await upload(iter([ping()]))
    assert caught_watch.value.code() is StatusCode.UNIMPLEMENTED
    assert "StreamService.Watch was not programmed" in (caught_watch.value.details() or "")
    assert caught_upload.value.code() is StatusCode.UNIMPLEMENTED
    assert "answers unary-unary and server-streaming RPCs only" in (
        caught_upload.value.details() or ""
    )
    assert [call.rpc for call in mock.all_calls()] == ["Echo", "Watch"]


def test_of_refuses_what_is_not_a_generated_stub() -> None:
    with pytest.raises(MockError, match="is not a generated gRPC stub class"):
        GrpcMock.of(lambda channel: channel.no_such_method())  # type: ignore[attr-defined]
    with pytest.raises(MockError, match="does not look like a generated stub of one service"):
        GrpcMock.of(lambda channel: None)


# -- serving -----------------------------------------------------------------------------


async def test_astart_answers_health_for_the_service(mock: DummyMock) -> None:
    address = await mock.astart()
    try:
        assert address == f"127.0.0.1:{mock.port}"
        assert mock.port > 0
        assert repr(mock) == f"<GrpcMock dummy.v1.DummyService serving at {address}>"
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "dummy.v1.DummyService"):
                response = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert response.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(MockError, match=re.escape("already serving at 127.0.0.1:")):
            await mock.astart()
    finally:
        await mock.aclose()
    await mock.aclose()  # idempotent
    with pytest.raises(MockError, match="not serving; call start"):
        _ = mock.address


async def test_a_taken_port_is_refused_with_the_remedy(mock: DummyMock) -> None:
    other = GrpcMock.of(user_pb2_grpc.UserServiceStub)
    await other.astart()
    try:
        with pytest.raises(MockError, match=r"is the port taken.*Use port 0"):
            await mock.astart(port=other.port)
    finally:
        await other.aclose()


def test_a_blocking_client_is_answered(mock: DummyMock) -> None:
    # A synchronous test blocks its thread; the mock answers from its own loop thread.
    mock.when(lambda stub: stub.GetEntity).returns(FOUND)
    with mock.serving() as address, grpc.insecure_channel(address) as channel:
        assert dummy_pb2_grpc.DummyServiceStub(channel).GetEntity(GET, timeout=10) == FOUND
    mock.verify(lambda stub: stub.GetEntity).called_once_with(GET)


def test_grpc_mocks_closes_every_mock_and_collects_their_errors() -> None:
    with GrpcMocks() as mocks:
        users = mocks.of(user_pb2_grpc.UserServiceStub)
        entities = mocks.add(GrpcMock.of(dummy_pb2_grpc.DummyServiceStub))
        users.start()
        entities.start()
        users.when(lambda stub: stub.GetUser).responds(broken)
        with grpc.insecure_channel(users.address) as channel, pytest.raises(grpc.RpcError):
            user_pb2_grpc.UserServiceStub(channel).GetUser(user_pb2.GetUserRequest(), timeout=10)
        with pytest.raises(
            MockVerificationError, match=re.escape("user.v1.UserService mock: errors")
        ):
            mocks.assert_no_errors()
    assert "not serving" in repr(users)
    assert "not serving" in repr(entities)


SEPARATE_PROCESS_CLIENT = """
import json, sys
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from dummy.v1 import dummy_pb2, dummy_pb2_grpc

with grpc.insecure_channel(sys.argv[1]) as channel:
    grpc.channel_ready_future(channel).result(timeout=10)
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="dummy.v1.DummyService"), timeout=10
    )
    entity = dummy_pb2_grpc.DummyServiceStub(channel).GetEntity(
        dummy_pb2.GetEntityRequest(owner_id=sys.argv[2], id=sys.argv[3]),
        metadata=(("x-from", "subprocess"),),
        timeout=10,
    ).entity
print(json.dumps({"health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status),
                  "entity": entity.id}))
"""


@pytest.mark.integration
def test_served_on_all_interfaces_another_process_checks_health_and_calls(
    mock: DummyMock,
) -> None:
    mock.when(lambda stub: stub.GetEntity).returns(FOUND)
    with mock.serving(bind_host="0.0.0.0") as address:  # noqa: S104 -- what containers need
        assert address == f"0.0.0.0:{mock.port}"
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(SEPARATE_PROCESS_CLIENT),
                f"127.0.0.1:{mock.port}",
                OWNER,
                ENTITY.id,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"health": "SERVING", "entity": ENTITY.id}
    call = mock.verify(lambda stub: stub.GetEntity).called_once_with(GET)
    assert call.metadata_value("x-from") == "subprocess"


# -- the type checker -------------------------------------------------------------------


TYPED_USE = """
from __future__ import annotations

import grpc

from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from harness import Call, GrpcMock


def created(call: Call[dummy_pb2.CreateEntityRequest]) -> dummy_pb2.CreateEntityResponse:
    return dummy_pb2.CreateEntityResponse(entity=dummy_pb2.Entity(name=call.request.name))


mock = GrpcMock.of(dummy_pb2_grpc.DummyServiceStub)
mock.when(lambda stub: stub.GetEntity).returns(dummy_pb2.GetEntityResponse())
mock.when(lambda stub: stub.CreateEntity).responds(created).then().fails(
    grpc.StatusCode.NOT_FOUND, "gone"
)
calls: list[Call[dummy_pb2.GetEntityRequest]] = mock.calls(lambda stub: stub.GetEntity)
mock.verify(lambda stub: stub.GetEntity).called_once_with(dummy_pb2.GetEntityRequest(id="e"))
"""

# Each line below is one mistake; the test expects one error on each, mentioning the text.
TYPED_MISTAKES = {
    "mock.when(lambda stub: stub.NoSuchRpc)": 'has no attribute "NoSuchRpc"',
    "mock.calls(lambda stub: stub.NoSuchRpc)": 'has no attribute "NoSuchRpc"',
    "mock.when(lambda stub: stub.GetEntity).returns(dummy_pb2.CreateEntityResponse())": (
        'incompatible type "CreateEntityResponse"; expected "GetEntityResponse"'
    ),
    "mock.verify(lambda stub: stub.GetEntity).called_once_with(dummy_pb2.DeleteEntityRequest())": (
        'incompatible type "DeleteEntityRequest"; expected "GetEntityRequest"'
    ),
}


def run_mypy(tmp_path: Path, source: str) -> list[str]:
    module = tmp_path / "uses_mock.py"
    module.write_text(source)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(module),
        ],
        cwd=REPO,  # the config's mypy_path is relative to it
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "error: " in result.stdout or result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if ": error: " in line]


def test_correct_use_type_checks_clean(tmp_path: Path) -> None:
    assert run_mypy(tmp_path, TYPED_USE) == []


def test_an_unknown_rpc_or_a_wrong_message_is_a_type_error(tmp_path: Path) -> None:
    source = TYPED_USE + "\n".join(TYPED_MISTAKES) + "\n"
    first = len(TYPED_USE.splitlines()) + 1
    errors = run_mypy(tmp_path, source)
    for offset, (line, expected) in enumerate(TYPED_MISTAKES.items()):
        on_line = [error for error in errors if f"uses_mock.py:{first + offset}: " in error]
        assert on_line, f"no type error for {line!r}; mypy said:\n" + "\n".join(errors)
        assert any(expected in error for error in on_line), on_line
    assert len({error.split(":")[1] for error in errors}) == len(TYPED_MISTAKES), errors
