"""Fixtures of the gateway's unit tests: every test builds the app in-process
(``httpx.ASGITransport``) on channels to the harness's gRPC mocks, programs what each
service answers and verifies what it was asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import pytest

from auth import auth_pb2_grpc
from dummy import dummy_pb2_grpc
from gateway.app import create_app
from gateway.clients import Clients
from gateway.settings import GatewaySettings
from harness import GrpcMocks
from user import user_pb2_grpc

from .support import (
    Gateway,
    GatewayFactory,
)


@pytest.fixture
def make_gateway(grpc_mocks: GrpcMocks) -> GatewayFactory:
    """``async with make_gateway(environment="production") as gw``: settings overridden."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Gateway]:
        values: dict[str, Any] = {
            "environment": "local",
            "grpc_timeout_seconds": 0.5,
            "readiness_timeout_seconds": 0.5,
        }
        values.update(overrides)
        settings = GatewaySettings(**values)
        auth = grpc_mocks.of(auth_pb2_grpc.AuthServiceStub)
        user = grpc_mocks.of(user_pb2_grpc.UserServiceStub)
        dummy = grpc_mocks.of(dummy_pb2_grpc.DummyServiceStub)
        clients = Clients.on_channels(
            auth=grpc.aio.insecure_channel(auth.start()),
            user=grpc.aio.insecure_channel(user.start()),
            dummy=grpc.aio.insecure_channel(dummy.start()),
            timeout=settings.grpc_timeout_seconds,
        )
        app = create_app(settings, clients)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield Gateway(http, auth, user, dummy, settings)
        finally:
            await clients.close()

    return make


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> AsyncIterator[Gateway]:
    """The gateway in the local environment, not logged in."""
    async with make_gateway() as gateway:
        yield gateway


@pytest.fixture
async def logged_in(gw: Gateway) -> Gateway:
    """The gateway with a valid session cookie of USER_ID."""
    gw.logged_in()
    return gw
