"""A typed client of the user service for other services: every call has a deadline."""

from __future__ import annotations

import grpc

from user.v1 import user_pb2, user_pb2_grpc

DEFAULT_TIMEOUT_SECONDS = 5.0


class UserClient:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self._stub = user_pb2_grpc.UserServiceStub(channel)
        self._timeout = timeout

    async def create_user(self, request: user_pb2.CreateUserRequest) -> user_pb2.CreateUserResponse:
        return await self._stub.CreateUser(request, timeout=self._timeout)

    async def get_user(self, request: user_pb2.GetUserRequest) -> user_pb2.GetUserResponse:
        return await self._stub.GetUser(request, timeout=self._timeout)

    async def get_user_by_email(
        self, request: user_pb2.GetUserByEmailRequest
    ) -> user_pb2.GetUserByEmailResponse:
        return await self._stub.GetUserByEmail(request, timeout=self._timeout)
