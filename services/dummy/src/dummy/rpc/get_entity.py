"""GetEntity: one entity of the owner, or NOT_FOUND."""

from __future__ import annotations

from dummy.errors import EntityNotFound
from dummy.repository import EntityRepository
from dummy.rpc.convert import entity_message
from dummy.v1 import dummy_pb2
from servicekit.validation import parse_uuid


async def get_entity(
    request: dummy_pb2.GetEntityRequest, repository: EntityRepository
) -> dummy_pb2.GetEntityResponse:
    owner_id = parse_uuid("owner_id", request.owner_id)
    entity_id = parse_uuid("id", request.id)
    entity = await repository.get(owner_id, entity_id)
    if entity is None:
        raise EntityNotFound(entity_id)
    return dummy_pb2.GetEntityResponse(entity=entity_message(entity))
