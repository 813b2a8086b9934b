"""Proto messages -> HTTP models."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from dummy import dummy_pb2
from gateway import models
from user import user_pb2


def _time(message: object, field: str) -> datetime | None:
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    value: Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)


def entity(message: dummy_pb2.Entity) -> models.Entity:
    return models.Entity(
        id=message.id,
        owner_id=message.owner_id,
        name=message.name,
        description=message.description,
        create_time=_time(message, "create_time"),
        update_time=_time(message, "update_time"),
    )


def user(message: user_pb2.User) -> models.User:
    return models.User(
        id=message.id,
        email=message.email,
        name=message.name,
        avatar_url=message.avatar_url,
        create_time=_time(message, "create_time"),
    )
