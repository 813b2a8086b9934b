"""GetUser: one user by id, or NOT_FOUND."""

from __future__ import annotations

from servicekit.validation import parse_uuid
from user.errors import UserNotFound
from user.repository import UserRepository
from user.rpc.convert import user_message
from user.v1 import user_pb2


async def get_user(
    request: user_pb2.GetUserRequest, repository: UserRepository
) -> user_pb2.GetUserResponse:
    user_id = parse_uuid("id", request.id)
    user = await repository.get(user_id)
    if user is None:
        raise UserNotFound(user_id)
    return user_pb2.GetUserResponse(user=user_message(user))
