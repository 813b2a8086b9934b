"""DeleteEntity: remove one entity of the owner; NOT_FOUND when there is none."""

from __future__ import annotations

from dummy.errors import EntityNotFound
from dummy.repository import EntityRepository
from dummy.v1 import dummy_pb2
from servicekit.validation import parse_uuid


async def delete_entity(
    request: dummy_pb2.DeleteEntityRequest, repository: EntityRepository
) -> dummy_pb2.DeleteEntityResponse:
    owner_id = parse_uuid("owner_id", request.owner_id)
    entity_id = parse_uuid("id", request.id)
    if not await repository.delete(owner_id, entity_id):
        raise EntityNotFound(entity_id)
    return dummy_pb2.DeleteEntityResponse()
