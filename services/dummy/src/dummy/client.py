"""A typed client of the dummy service for other services: every call has a deadline."""

from __future__ import annotations

import grpc

from dummy.v1 import dummy_pb2, dummy_pb2_grpc

DEFAULT_TIMEOUT_SECONDS = 5.0


class DummyClient:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self._stub = dummy_pb2_grpc.DummyServiceStub(channel)
        self._timeout = timeout

    async def create_entity(
        self, request: dummy_pb2.CreateEntityRequest
    ) -> dummy_pb2.CreateEntityResponse:
        return await self._stub.CreateEntity(request, timeout=self._timeout)

    async def get_entity(self, request: dummy_pb2.GetEntityRequest) -> dummy_pb2.GetEntityResponse:
        return await self._stub.GetEntity(request, timeout=self._timeout)

    async def list_entities(
        self, request: dummy_pb2.ListEntitiesRequest
    ) -> dummy_pb2.ListEntitiesResponse:
        return await self._stub.ListEntities(request, timeout=self._timeout)

    async def update_entity(
        self, request: dummy_pb2.UpdateEntityRequest
    ) -> dummy_pb2.UpdateEntityResponse:
        return await self._stub.UpdateEntity(request, timeout=self._timeout)

    async def delete_entity(
        self, request: dummy_pb2.DeleteEntityRequest
    ) -> dummy_pb2.DeleteEntityResponse:
        return await self._stub.DeleteEntity(request, timeout=self._timeout)
