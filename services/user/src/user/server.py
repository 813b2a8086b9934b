"""The user gRPC servicer: thin, it delegates each RPC to its module."""

from __future__ import annotations

from typing import TYPE_CHECKING

from servicekit.server import ServiceRegistration
from user.repository import UserRepository
from user.rpc.create_user import create_user
from user.rpc.get_user import get_user
from user.rpc.get_user_by_email import get_user_by_email
from user.v1 import user_pb2, user_pb2_grpc

if TYPE_CHECKING:
    from servicekit.server import Context


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(self, repository: UserRepository) -> None:
        self._repository = repository

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        return await create_user(request, self._repository)

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        return await get_user(request, self._repository)

    async def GetUserByEmail(
        self, request: user_pb2.GetUserByEmailRequest, context: Context
    ) -> user_pb2.GetUserByEmailResponse:
        return await get_user_by_email(request, self._repository)


def registration(repository: UserRepository) -> ServiceRegistration:
    servicer = UserServicer(repository)
    return ServiceRegistration(
        full_name=user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
        add_to_server=lambda server: user_pb2_grpc.add_UserServiceServicer_to_server(
            servicer, server
        ),
    )
