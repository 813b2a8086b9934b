"""A typed client of the auth service for other services: every call has a deadline."""

from __future__ import annotations

import grpc

from auth.v1 import auth_pb2, auth_pb2_grpc

DEFAULT_TIMEOUT_SECONDS = 5.0
# Code exchange and JWKS fetches reach the provider: allow for its own timeout.
OAUTH_CALLBACK_TIMEOUT_SECONDS = 15.0


class AuthClient:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self._stub = auth_pb2_grpc.AuthServiceStub(channel)
        self._timeout = timeout

    async def create_session(
        self, request: auth_pb2.CreateSessionRequest
    ) -> auth_pb2.CreateSessionResponse:
        return await self._stub.CreateSession(request, timeout=self._timeout)

    async def validate_session(
        self, request: auth_pb2.ValidateSessionRequest
    ) -> auth_pb2.ValidateSessionResponse:
        return await self._stub.ValidateSession(request, timeout=self._timeout)

    async def delete_session(
        self, request: auth_pb2.DeleteSessionRequest
    ) -> auth_pb2.DeleteSessionResponse:
        return await self._stub.DeleteSession(request, timeout=self._timeout)

    async def start_oauth_login(
        self, request: auth_pb2.StartOauthLoginRequest
    ) -> auth_pb2.StartOauthLoginResponse:
        return await self._stub.StartOauthLogin(request, timeout=self._timeout)

    async def handle_oauth_callback(
        self, request: auth_pb2.HandleOauthCallbackRequest
    ) -> auth_pb2.HandleOauthCallbackResponse:
        return await self._stub.HandleOauthCallback(request, timeout=OAUTH_CALLBACK_TIMEOUT_SECONDS)

    async def link_oauth_account(
        self, request: auth_pb2.LinkOauthAccountRequest
    ) -> auth_pb2.LinkOauthAccountResponse:
        return await self._stub.LinkOauthAccount(request, timeout=self._timeout)

    async def get_oauth_account(
        self, request: auth_pb2.GetOauthAccountRequest
    ) -> auth_pb2.GetOauthAccountResponse:
        return await self._stub.GetOauthAccount(request, timeout=self._timeout)
