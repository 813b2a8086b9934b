"""/healthz, /readyz and the trace id of every response and downstream call."""

from __future__ import annotations

import grpc
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from auth import auth_pb2_grpc
from gateway.app import create_app
from gateway.clients import Clients
from gateway.settings import GatewaySettings
from gateway.tracing import install_tracing
from harness import GrpcMocks
from servicekit.channels import service_channel

from .support import (
    TOKEN,
    Gateway,
)

# --- health, trace ids, OpenAPI ----------------------------------------------------------


async def test_healthz_answers_without_a_session(gw: Gateway) -> None:
    response = await gw.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_every_service_serves(gw: Gateway) -> None:
    response = await gw.http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "services": {"auth": "SERVING", "user": "SERVING", "dummy": "SERVING"},
    }


async def test_readyz_is_503_when_a_service_is_down(gw: Gateway) -> None:
    await gw.user.aclose()
    response = await gw.http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["services"]["user"] != "SERVING"
    assert body["services"]["auth"] == "SERVING"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.json"),
        ("GET", "/user/me"),
        ("GET", "/nowhere"),
        ("GET", "/entities?page_size=0"),
        ("POST", "/entities"),
        ("GET", "/auth/myspace/login"),
    ],
    ids=["healthz", "readyz", "openapi", "401", "404", "422", "403", "unknown-provider"],
)
async def test_every_response_has_a_trace_id(gw: Gateway, method: str, path: str) -> None:
    response = await gw.http.request(method, path)
    trace_id = response.headers["x-trace-id"]
    assert len(trace_id) == 32
    int(trace_id, 16)
    if response.status_code >= 400:
        assert response.json()["error"]["trace_id"] == trace_id


async def test_each_response_has_its_own_trace_id(gw: Gateway) -> None:
    first = await gw.http.get("/healthz")
    second = await gw.http.get("/healthz")
    assert first.headers["x-trace-id"] != second.headers["x-trace-id"]


async def test_the_trace_id_is_the_request_spans_when_traced(grpc_mocks: GrpcMocks) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    auth = grpc_mocks.of(auth_pb2_grpc.AuthServiceStub)
    channel = grpc.aio.insecure_channel(auth.start())
    clients = Clients.on_channels(auth=channel, user=channel, dummy=channel, timeout=0.5)
    try:
        app = create_app(GatewaySettings(environment="local"), clients)
        install_tracing(app, provider)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/user/me")
    finally:
        await clients.close()
        provider.shutdown()
    assert response.status_code == 401
    trace_ids = {format(span.context.trace_id, "032x") for span in exporter.get_finished_spans()}
    assert trace_ids == {response.headers["x-trace-id"]}


async def test_downstream_calls_carry_the_responses_trace(grpc_mocks: GrpcMocks) -> None:
    provider = TracerProvider()
    auth = grpc_mocks.of(auth_pb2_grpc.AuthServiceStub)
    auth.when(lambda s: s.ValidateSession).fails(grpc.StatusCode.UNAUTHENTICATED, "unknown")
    channel = service_channel(auth.start(), tracer_provider=provider)
    clients = Clients.on_channels(auth=channel, user=channel, dummy=channel, timeout=0.5)
    try:
        app = create_app(GatewaySettings(environment="local"), clients)
        install_tracing(app, provider)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies={"session": TOKEN}
        ) as http:
            response = await http.get("/user/me")
    finally:
        await clients.close()
        provider.shutdown()
    assert response.status_code == 401
    call = auth.verify(lambda s: s.ValidateSession).called_once()
    traceparent = call.metadata_value("traceparent")
    assert isinstance(traceparent, str)
    assert traceparent.split("-")[1] == response.headers["x-trace-id"]
