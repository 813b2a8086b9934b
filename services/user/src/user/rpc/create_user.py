"""CreateUser: validate and normalize, then store; ALREADY_EXISTS for a used e-mail."""

from __future__ import annotations

from user.domain import NewUser, normalize_email, valid_avatar_url, valid_name
from user.repository import UserRepository
from user.rpc.convert import user_message
from user.v1 import user_pb2


async def create_user(
    request: user_pb2.CreateUserRequest, repository: UserRepository
) -> user_pb2.CreateUserResponse:
    new = NewUser(
        email=normalize_email(request.email),
        name=valid_name(request.name),
        avatar_url=valid_avatar_url(request.avatar_url),
    )
    user = await repository.create(new)
    return user_pb2.CreateUserResponse(user=user_message(user))
