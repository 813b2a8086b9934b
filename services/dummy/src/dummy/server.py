"""The dummy gRPC servicer: thin, it delegates each RPC to its module."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dummy.owners import Owners
from dummy.repository import EntityRepository
from dummy.rpc.create_entity import create_entity
from dummy.rpc.delete_entity import delete_entity
from dummy.rpc.get_entity import get_entity
from dummy.rpc.list_entities import list_entities
from dummy.rpc.update_entity import update_entity
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from servicekit.server import ServiceRegistration

if TYPE_CHECKING:
    from servicekit.server import Context


class DummyServicer(dummy_pb2_grpc.DummyServiceServicer):
    def __init__(self, repository: EntityRepository, owners: Owners) -> None:
        self._repository = repository
        self._owners = owners

    async def CreateEntity(
        self, request: dummy_pb2.CreateEntityRequest, context: Context
    ) -> dummy_pb2.CreateEntityResponse:
        return await create_entity(request, self._repository, self._owners)

    async def GetEntity(
        self, request: dummy_pb2.GetEntityRequest, context: Context
    ) -> dummy_pb2.GetEntityResponse:
        return await get_entity(request, self._repository)

    async def ListEntities(
        self, request: dummy_pb2.ListEntitiesRequest, context: Context
    ) -> dummy_pb2.ListEntitiesResponse:
        return await list_entities(request, self._repository)

    async def UpdateEntity(
        self, request: dummy_pb2.UpdateEntityRequest, context: Context
    ) -> dummy_pb2.UpdateEntityResponse:
        return await update_entity(request, self._repository)

    async def DeleteEntity(
        self, request: dummy_pb2.DeleteEntityRequest, context: Context
    ) -> dummy_pb2.DeleteEntityResponse:
        return await delete_entity(request, self._repository)


def registration(repository: EntityRepository, owners: Owners) -> ServiceRegistration:
    servicer = DummyServicer(repository, owners)
    return ServiceRegistration(
        full_name=dummy_pb2.DESCRIPTOR.services_by_name["DummyService"].full_name,
        add_to_server=lambda server: dummy_pb2_grpc.add_DummyServiceServicer_to_server(
            servicer, server
        ),
    )
