"""Owners known to the user service: one GetUser call, with a deadline."""

from __future__ import annotations

from uuid import UUID

import grpc

from dummy.errors import OwnersTimedOut, OwnersUnavailable
from user import UserClient
from user.v1 import user_pb2


class UserServiceOwners:
    def __init__(self, users: UserClient) -> None:
        self._users = users

    async def exists(self, owner_id: UUID) -> bool:
        try:
            await self._users.get_user(user_pb2.GetUserRequest(id=str(owner_id)))
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise OwnersTimedOut from error
            # Anything else (down, slow, a bug on its side) means "cannot tell now".
            raise OwnersUnavailable(error.code().name) from error
        return True
