"""Domain values to protobuf messages (the other direction is each RPC's parsing)."""

from __future__ import annotations

from servicekit.timestamps import to_timestamp
from user.domain import User
from user.v1 import user_pb2


def user_message(user: User) -> user_pb2.User:
    return user_pb2.User(
        id=str(user.id),
        email=user.email,
        name=user.name,
        avatar_url=user.avatar_url,
        create_time=to_timestamp(user.created_at),
    )
