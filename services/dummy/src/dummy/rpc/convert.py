"""Domain values to protobuf messages (the other direction is each RPC's parsing)."""

from __future__ import annotations

from dummy.domain import Entity
from dummy.v1 import dummy_pb2
from servicekit.timestamps import to_timestamp


def entity_message(entity: Entity) -> dummy_pb2.Entity:
    return dummy_pb2.Entity(
        id=str(entity.id),
        owner_id=str(entity.owner_id),
        name=entity.name,
        description=entity.description,
        create_time=to_timestamp(entity.created_at),
        update_time=to_timestamp(entity.updated_at),
    )
