"""CreateEntity: validate, check the owner is a user, then store (idempotently when a
request_id is given)."""

from __future__ import annotations

from dummy.domain import NewEntity, valid_description, valid_name
from dummy.errors import UnknownOwner
from dummy.owners import Owners
from dummy.repository import EntityRepository
from dummy.rpc.convert import entity_message
from dummy.v1 import dummy_pb2
from servicekit.validation import parse_uuid


async def create_entity(
    request: dummy_pb2.CreateEntityRequest, repository: EntityRepository, owners: Owners
) -> dummy_pb2.CreateEntityResponse:
    new = NewEntity(
        owner_id=parse_uuid("owner_id", request.owner_id),
        name=valid_name(request.name),
        description=valid_description(request.description),
        request_id=parse_uuid("request_id", request.request_id) if request.request_id else None,
    )
    if not await owners.exists(new.owner_id):
        raise UnknownOwner(new.owner_id)
    entity = await repository.create(new)
    return dummy_pb2.CreateEntityResponse(entity=entity_message(entity))
