"""GetUserByEmail: the user with this e-mail in any case, or NOT_FOUND.

The address is validated and normalized as CreateUser does, so a malformed one is
INVALID_ARGUMENT rather than a lookup that can never succeed.
"""

from __future__ import annotations

from user.domain import normalize_email
from user.errors import UserNotFound
from user.repository import UserRepository
from user.rpc.convert import user_message
from user.v1 import user_pb2


async def get_user_by_email(
    request: user_pb2.GetUserByEmailRequest, repository: UserRepository
) -> user_pb2.GetUserByEmailResponse:
    email = normalize_email(request.email)
    user = await repository.get_by_email(email)
    if user is None:
        raise UserNotFound(email=email)
    return user_pb2.GetUserByEmailResponse(user=user_message(user))
