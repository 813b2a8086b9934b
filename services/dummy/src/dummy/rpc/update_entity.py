"""UpdateEntity: change the fields that are set; NOT_FOUND for another owner's entity."""

from __future__ import annotations

from dummy.domain import EntityChanges, valid_description, valid_name
from dummy.errors import EntityNotFound
from dummy.repository import EntityRepository
from dummy.rpc.convert import entity_message
from dummy.v1 import dummy_pb2
from servicekit.errors import InvalidArgument
from servicekit.validation import parse_uuid


async def update_entity(
    request: dummy_pb2.UpdateEntityRequest, repository: EntityRepository
) -> dummy_pb2.UpdateEntityResponse:
    owner_id = parse_uuid("owner_id", request.owner_id)
    entity_id = parse_uuid("id", request.id)
    has_name = request.HasField("name")
    has_description = request.HasField("description")
    if not has_name and not has_description:
        raise InvalidArgument("name", "set name or description (or both) to update")
    changes = EntityChanges(
        name=valid_name(request.name) if has_name else None,
        description=valid_description(request.description) if has_description else None,
    )
    entity = await repository.update(owner_id, entity_id, changes)
    if entity is None:
        raise EntityNotFound(entity_id)
    return dummy_pb2.UpdateEntityResponse(entity=entity_message(entity))
