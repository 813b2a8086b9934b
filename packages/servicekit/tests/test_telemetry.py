"""Tracing and trace-carrying logs of a servicekit server, on local providers.

The dummy service (in-memory repository) calls the user service (in-memory too) over a
channel with the client interceptors, both served in this process by ``create_server``.
Each test builds its own tracer providers, exporting to an in-memory exporter: nothing
global is set, so nothing leaks between tests.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from dummy.owners import InMemoryOwners, UserServiceOwners
from dummy.repository import InMemoryEntityRepository, PostgresEntityRepository
from dummy.server import registration as dummy_registration
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from harness import ServiceProcess, TraceReceiver, assert_logs_carry_trace
from servicekit import telemetry as telemetry_module
from servicekit.calls import CallPolicy
from servicekit.channels import service_channel
from servicekit.logging import json_handler
from servicekit.postgres import create_pool
from servicekit.server import ServiceRegistration, create_server
from servicekit.telemetry import (
    Telemetry,
    instrument_asyncpg,
    start_telemetry,
)
from user import UserClient
from user.repository import InMemoryUserRepository
from user.server import registration as user_registration
from user.v1 import user_pb2, user_pb2_grpc

OWNER = "00000000-0000-4000-8000-000000000001"
MISSING = "00000000-0000-4000-8000-00000000dead"


class BreakableRepository(InMemoryEntityRepository):
    """Fails ``get`` with a bug (not a storage error) when told to."""

    broken = False

    async def get(self, owner_id: UUID, entity_id: UUID) -> Any:
        if self.broken:
            raise RuntimeError("a bug in the repository")
        return await super().get(owner_id, entity_id)


@dataclass(frozen=True)
class Caller:
    """The test as a client: the trace context it sends with every call."""

    trace_id: str
    span_id: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("traceparent", f"00-{self.trace_id}-{self.span_id}-01"),)


@pytest.fixture
def caller() -> Caller:
    return Caller(secrets.token_hex(16), secrets.token_hex(8))


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetries(exporter: InMemorySpanExporter) -> Iterator[dict[str, Telemetry]]:
    """A local provider per service, all exporting to ``exporter``."""
    made = {
        name: start_telemetry(name, environ={}, exporter=exporter) for name in ("dummy", "user")
    }
    yield made
    for telemetry in made.values():
        assert telemetry.shutdown(timeout_seconds=5)


def finished(
    exporter: InMemorySpanExporter, telemetries: Mapping[str, Telemetry]
) -> list[ReadableSpan]:
    for telemetry in telemetries.values():
        telemetry.tracer_provider.force_flush()
    return list(exporter.get_finished_spans())


async def spans_of(
    trace_id: str,
    exporter: InMemorySpanExporter,
    telemetries: Mapping[str, Telemetry],
    count: int,
) -> list[ReadableSpan]:
    """The spans of ``trace_id`` once ``count`` of them have ended (waiting up to 5 s).

    Waiting is needed: an aborting handler sends its status before it returns, so a
    client can hear NOT_FOUND before the server span (and its access log line) ends.
    """
    deadline = time.monotonic() + 5
    while True:
        spans = [s for s in finished(exporter, telemetries) if hex_trace(s) == trace_id]
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.005)


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines servicekit's handler writes while the test runs, parsed."""
    stream = io.StringIO()
    handler = json_handler("dummy", stream)
    servicekit_logger = logging.getLogger("servicekit")
    level = servicekit_logger.level
    servicekit_logger.addHandler(handler)
    servicekit_logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    servicekit_logger.removeHandler(handler)
    servicekit_logger.setLevel(level)


@asynccontextmanager
async def serving(
    registrations: Sequence[ServiceRegistration], telemetry: Telemetry
) -> AsyncIterator[str]:
    server = create_server(
        "127.0.0.1:0",
        registrations,
        tracer_provider=telemetry.tracer_provider,
        policy=CallPolicy(access_log=True),
    )
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(grace=0)


@dataclass
class Stack:
    dummy: dummy_pb2_grpc.DummyServiceAsyncStub
    dummy_channel: grpc.aio.Channel
    user: user_pb2_grpc.UserServiceAsyncStub
    repository: BreakableRepository


@pytest.fixture
async def stack(telemetries: dict[str, Telemetry]) -> AsyncIterator[Stack]:
    """dummy → user, each on its own provider; dummy's channel to user is instrumented."""
    repository = BreakableRepository()
    async with serving(
        [user_registration(InMemoryUserRepository())], telemetries["user"]
    ) as user_address:
        user_channel = service_channel(
            user_address, tracer_provider=telemetries["dummy"].tracer_provider
        )
        owners = UserServiceOwners(UserClient(user_channel))
        async with (
            serving([dummy_registration(repository, owners)], telemetries["dummy"]) as address,
            grpc.aio.insecure_channel(address) as dummy_channel,
            grpc.aio.insecure_channel(user_address) as test_user_channel,
        ):
            yield Stack(
                dummy_pb2_grpc.DummyServiceStub(dummy_channel),
                dummy_channel,
                user_pb2_grpc.UserServiceStub(test_user_channel),
                repository,
            )
        await user_channel.close(None)


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format_trace_id(span.context.trace_id)


def hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return format_span_id(span.context.span_id)


def hex_parent(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format_span_id(span.parent.span_id)


def only(spans: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind == kind]
    assert len(found) == 1, f"{len(found)} {kind} spans named {name}: {[s.name for s in spans]}"
    return found[0]


async def new_owner(stack: Stack) -> str:
    created = await stack.user.CreateUser(
        user_pb2.CreateUserRequest(email=f"{secrets.token_hex(4)}@example.com", name="Owner")
    )
    return created.user.id


# What each call answers, and whether OpenTelemetry counts that status as a server error.
CASES: dict[str, tuple[str, grpc.StatusCode, bool]] = {
    "ok": ("GetEntity", grpc.StatusCode.OK, False),
    "not found": ("GetEntity", grpc.StatusCode.NOT_FOUND, False),
    "invalid argument": ("GetEntity", grpc.StatusCode.INVALID_ARGUMENT, False),
    "internal": ("GetEntity", grpc.StatusCode.INTERNAL, True),
    "unavailable": ("GetEntity", grpc.StatusCode.UNAVAILABLE, True),
}


async def call_answering(stack: Stack, code: grpc.StatusCode, caller: Caller) -> None:
    """Make GetEntity answer ``code``, the call carrying the caller's trace context."""
    entity_id, owner = MISSING, OWNER
    if code is grpc.StatusCode.OK:
        owner = await new_owner(stack)
        created = await stack.dummy.CreateEntity(
            dummy_pb2.CreateEntityRequest(owner_id=owner, name="kept")
        )
        entity_id = created.entity.id
    elif code is grpc.StatusCode.INVALID_ARGUMENT:
        owner = "not-a-uuid"
    elif code is grpc.StatusCode.INTERNAL:
        stack.repository.broken = True
    elif code is grpc.StatusCode.UNAVAILABLE:
        stack.repository.unavailable = True
    request = dummy_pb2.GetEntityRequest(owner_id=owner, id=entity_id)
    if code is grpc.StatusCode.OK:
        await stack.dummy.GetEntity(request, metadata=caller.metadata)
        return
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stack.dummy.GetEntity(request, metadata=caller.metadata)
    assert failed.value.code() == code


@pytest.mark.integration  # a gRPC server on loopback
@pytest.mark.parametrize(("method", "code", "is_error"), CASES.values(), ids=CASES.keys())
async def test_the_server_span_continues_the_callers_trace_and_records_the_status(
    stack: Stack,
    exporter: InMemorySpanExporter,
    telemetries: dict[str, Telemetry],
    caller: Caller,
    method: str,
    code: grpc.StatusCode,
    is_error: bool,
) -> None:
    await call_answering(stack, code, caller)

    spans = await spans_of(caller.trace_id, exporter, telemetries, count=1)
    server = only(spans, f"/dummy.v1.DummyService/{method}", SpanKind.SERVER)
    assert hex_parent(server) == caller.span_id
    assert server.resource.attributes["service.name"] == "dummy"
    assert server.attributes is not None
    assert server.attributes["rpc.system"] == "grpc"
    assert server.attributes["rpc.service"] == "dummy.v1.DummyService"
    assert server.attributes["rpc.method"] == method
    assert server.attributes["rpc.grpc.status_code"] == code.value[0]
    assert (server.status.status_code is StatusCode.ERROR) == is_error
    if code is grpc.StatusCode.INTERNAL:  # the client hears "internal error"; the trace keeps why
        assert "RuntimeError" in [
            e.attributes.get("exception.type") for e in server.events if e.attributes
        ]


@pytest.mark.integration
async def test_a_call_to_another_service_carries_the_trace_on(
    stack: Stack, exporter: InMemorySpanExporter, telemetries: dict[str, Telemetry], caller: Caller
) -> None:
    owner = await new_owner(stack)
    await stack.dummy.CreateEntity(
        dummy_pb2.CreateEntityRequest(owner_id=owner, name="traced"), metadata=caller.metadata
    )

    spans = await spans_of(caller.trace_id, exporter, telemetries, count=3)
    server = only(spans, "/dummy.v1.DummyService/CreateEntity", SpanKind.SERVER)
    outgoing = only(spans, "/user.v1.UserService/GetUser", SpanKind.CLIENT)
    served = only(spans, "/user.v1.UserService/GetUser", SpanKind.SERVER)
    assert hex_parent(server) == caller.span_id
    assert hex_parent(outgoing) == hex_span(server)
    assert hex_parent(served) == hex_span(outgoing)
    assert outgoing.resource.attributes["service.name"] == "dummy"
    assert served.resource.attributes["service.name"] == "user"
    assert outgoing.attributes is not None
    assert outgoing.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    assert len(spans) == 3


@pytest.mark.integration
async def test_a_failed_downstream_call_is_an_error_on_the_client_span(
    stack: Stack, exporter: InMemorySpanExporter, telemetries: dict[str, Telemetry], caller: Caller
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # the owner is not a user
        await stack.dummy.CreateEntity(
            dummy_pb2.CreateEntityRequest(owner_id=MISSING, name="x"), metadata=caller.metadata
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    spans = await spans_of(caller.trace_id, exporter, telemetries, count=3)
    outgoing = only(spans, "/user.v1.UserService/GetUser", SpanKind.CLIENT)
    served = only(spans, "/user.v1.UserService/GetUser", SpanKind.SERVER)
    assert outgoing.attributes is not None
    assert outgoing.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert outgoing.status.status_code is StatusCode.ERROR  # a client span: any failure
    assert served.status.status_code is StatusCode.UNSET  # NOT_FOUND is no server error


@pytest.mark.integration
@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INTERNAL], ids=str)
async def test_log_lines_of_a_call_carry_its_trace_and_span(
    stack: Stack,
    exporter: InMemorySpanExporter,
    telemetries: dict[str, Telemetry],
    caller: Caller,
    log_lines: Callable[[], list[dict[str, Any]]],
    code: grpc.StatusCode,
) -> None:
    logging.getLogger("servicekit.test").info("before the call")
    await call_answering(stack, code, caller)

    spans = await spans_of(caller.trace_id, exporter, telemetries, count=1)
    server = only(spans, "/dummy.v1.DummyService/GetEntity", SpanKind.SERVER)
    lines = log_lines()
    outside = next(line for line in lines if line["message"] == "before the call")
    assert "trace_id" not in outside
    assert "span_id" not in outside
    access = next(line for line in lines if line.get("rpc_method", "").endswith("/GetEntity"))
    assert access["grpc_code"] == code.name
    during = [line for line in lines if line.get("trace_id") == caller.trace_id]
    assert access in during
    if code is grpc.StatusCode.INTERNAL:
        assert any(line["message"].startswith("unexpected error in") for line in during)
    for line in during:
        assert line["span_id"] == hex_span(server)
        assert {"time", "level", "name", "service", "message"} <= line.keys()
        assert line["service"] == "dummy"
        assert line["time"].endswith("Z")


@pytest.mark.integration
async def test_health_checks_make_neither_spans_nor_log_lines(
    stack: Stack,
    exporter: InMemorySpanExporter,
    telemetries: dict[str, Telemetry],
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    health = health_pb2_grpc.HealthStub(stack.dummy_channel)
    for _ in range(3):
        await health.Check(health_pb2.HealthCheckRequest())
    assert finished(exporter, telemetries) == []
    assert log_lines() == []


@pytest.mark.integration
async def test_without_an_endpoint_nothing_is_exported_and_calls_still_work(
    monkeypatch: pytest.MonkeyPatch, caller: Caller, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    def no_exporter(**kwargs: object) -> None:
        raise AssertionError(f"an OTLP exporter was created: {kwargs}")

    monkeypatch.setattr(telemetry_module, "OTLPSpanExporter", no_exporter)
    telemetry = start_telemetry("dummy", environ={"OTEL_EXPORTER_OTLP_HEADERS": "a=b"})
    assert telemetry.endpoint is None
    try:
        async with (
            serving(
                [dummy_registration(InMemoryEntityRepository(), InMemoryOwners())], telemetry
            ) as address,
            grpc.aio.insecure_channel(address) as channel,
        ):
            stub = dummy_pb2_grpc.DummyServiceStub(channel)
            await stub.CreateEntity(
                dummy_pb2.CreateEntityRequest(owner_id=OWNER, name="a"), metadata=caller.metadata
            )
    finally:
        started = time.monotonic()
        assert telemetry.shutdown(timeout_seconds=5)
        assert time.monotonic() - started < 1
    # spans still exist without export, so the lines still lead to the trace
    (access,) = [line for line in log_lines() if "rpc_method" in line]
    assert access["trace_id"] == caller.trace_id


@pytest.mark.integration
async def test_with_an_endpoint_the_spans_reach_the_collector(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    with TraceReceiver() as receiver:
        environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        telemetries = {name: start_telemetry(name, environ=environ) for name in ("dummy", "user")}
        assert telemetries["dummy"].endpoint == receiver.endpoint
        try:
            async with serving(
                [user_registration(InMemoryUserRepository())], telemetries["user"]
            ) as user_address:
                user_channel = service_channel(
                    user_address, tracer_provider=telemetries["dummy"].tracer_provider
                )
                owner = (
                    await UserClient(user_channel).create_user(
                        user_pb2.CreateUserRequest(email="o@example.com", name="O")
                    )
                ).user.id
                registration = dummy_registration(
                    InMemoryEntityRepository(), UserServiceOwners(UserClient(user_channel))
                )
                async with (
                    serving([registration], telemetries["dummy"]) as address,
                    grpc.aio.insecure_channel(address) as channel,
                ):
                    stub = dummy_pb2_grpc.DummyServiceStub(channel)
                    with receiver.client_span("create entity") as call:
                        await stub.CreateEntity(
                            dummy_pb2.CreateEntityRequest(owner_id=owner, name="a"),
                            metadata=call.metadata,
                        )
                    answered = time.monotonic()
                    trace = await receiver.trace(call.trace_id)
                    waited = time.monotonic() - answered
                await user_channel.close(None)
        finally:
            for telemetry in telemetries.values():
                assert telemetry.shutdown(timeout_seconds=5)

    trace.assert_single_trace().assert_no_orphans().assert_services(["test", "dummy", "user"])
    trace.assert_path(
        "create entity", "dummy.v1.DummyService/CreateEntity", "user.v1.UserService/GetUser"
    )
    trace.assert_rpc("user.v1.UserService/GetUser", service="user", code="OK")
    # in-process, both services log through one handler tagged "dummy"
    assert_logs_carry_trace([json.dumps(line) for line in log_lines()], trace, services=["dummy"])
    assert waited < 3, f"the trace took {waited:.2f}s to be available"


@pytest.mark.integration
def test_shutdown_gives_up_in_time_when_the_collector_is_unreachable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    telemetry = start_telemetry(
        "dummy", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    )
    with telemetry.tracer_provider.get_tracer("test").start_as_current_span("lost"):
        pass
    started = time.monotonic()
    assert telemetry.shutdown(timeout_seconds=0.5) is False
    assert time.monotonic() - started < 2


def test_a_bad_batch_delay_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="OTEL_BSP_SCHEDULE_DELAY"):
        start_telemetry(
            "dummy",
            environ={
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
                "OTEL_BSP_SCHEDULE_DELAY": "soon",
            },
        )


def test_asyncpg_is_instrumented_for_one_provider_at_a_time(
    telemetries: dict[str, Telemetry],
) -> None:
    undo = instrument_asyncpg(telemetries["dummy"].tracer_provider)
    try:
        with pytest.raises(RuntimeError, match="already instrumented"):
            instrument_asyncpg(telemetries["user"].tracer_provider)
    finally:
        undo()
    instrument_asyncpg(telemetries["user"].tracer_provider)()  # free again once undone


@pytest.mark.integration
async def test_every_query_is_a_child_span_of_the_rpc(
    clean_databases: Mapping[str, str],
    exporter: InMemorySpanExporter,
    telemetries: dict[str, Telemetry],
    caller: Caller,
) -> None:
    undo = instrument_asyncpg(telemetries["dummy"].tracer_provider)
    # The services' pool: it does not reset released connections, so no extra statement.
    pool = await create_pool(
        clean_databases["dummy"], min_size=1, max_size=2, connect_timeout=10, command_timeout=10
    )
    try:
        registration = dummy_registration(PostgresEntityRepository(pool), InMemoryOwners())
        async with (
            serving([registration], telemetries["dummy"]) as address,
            grpc.aio.insecure_channel(address) as channel,
        ):
            stub = dummy_pb2_grpc.DummyServiceStub(channel)
            created = await stub.CreateEntity(
                dummy_pb2.CreateEntityRequest(owner_id=OWNER, name="a"), metadata=caller.metadata
            )
            await stub.GetEntity(
                dummy_pb2.GetEntityRequest(owner_id=OWNER, id=created.entity.id),
                metadata=caller.metadata,
            )
    finally:
        await asyncio.wait_for(pool.close(), 10)
        undo()

    spans = await spans_of(caller.trace_id, exporter, telemetries, count=4)
    servers = {hex_span(s): s.name for s in spans if s.kind == SpanKind.SERVER}
    queries = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert sorted(servers.values()) == [
        "/dummy.v1.DummyService/CreateEntity",
        "/dummy.v1.DummyService/GetEntity",
    ]
    assert queries, f"no query span: {[s.name for s in spans]}"
    for query in queries:
        assert hex_parent(query) in servers
        assert query.attributes is not None
        assert query.attributes["db.system"] == "postgresql"
    # one INSERT, one SELECT: the pool does not reset released connections
    assert sorted((servers[hex_parent(q) or ""], q.name) for q in queries) == [
        ("/dummy.v1.DummyService/CreateEntity", "INSERT"),
        ("/dummy.v1.DummyService/GetEntity", "SELECT"),
    ]
    for query in queries:
        assert query.attributes is not None
        assert "pg_advisory_unlock_all" not in str(query.attributes.get("db.statement"))


@pytest.mark.integration
async def test_a_service_process_exports_its_spans_and_flushes_them_when_stopped(
    clean_databases: Mapping[str, str], tmp_path: Path
) -> None:
    with TraceReceiver() as receiver:
        process = ServiceProcess(
            name="user",
            module="user",
            env={
                "USER_DATABASE_URL": clean_databases["user"],
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                # no batch is due before the stop: only the flush at stop can deliver
                "OTEL_BSP_SCHEDULE_DELAY": "600000",
                "USER_ACCESS_LOG": "true",  # a line for the call, to carry the trace id
            },
            log_path=tmp_path / "user.log",
        )
        process.start()
        try:
            async with grpc.aio.insecure_channel(process.address) as channel:
                stub = user_pb2_grpc.UserServiceStub(channel)
                with (
                    receiver.client_span("get user") as call,
                    pytest.raises(grpc.aio.AioRpcError),
                ):
                    await stub.GetUser(user_pb2.GetUserRequest(id=MISSING), metadata=call.metadata)
            assert len(receiver.snapshot(call.trace_id)) == 1  # only the test's own span
        finally:
            assert process.stop(timeout=15) == 0, process.log_tail()
        trace = receiver.trace_sync(call.trace_id, settle=0.05, timeout=5)

    trace.assert_no_orphans().assert_services(["test", "user"])
    trace.assert_path("get user", "user.v1.UserService/GetUser", "SELECT")
    trace.assert_rpc("user.v1.UserService/GetUser", service="user", code="NOT_FOUND")
    assert_logs_carry_trace((tmp_path / "user.log").read_text().splitlines(), trace)
