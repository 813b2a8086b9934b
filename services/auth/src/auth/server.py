"""The auth gRPC servicer: thin, it delegates each RPC to its module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from auth.oauth import Providers
from auth.repository import OauthAccountRepository, SessionRepository
from auth.rpc.clock import Clock, utc_now
from auth.rpc.create_session import create_session
from auth.rpc.delete_session import delete_session
from auth.rpc.get_oauth_account import get_oauth_account
from auth.rpc.handle_oauth_callback import handle_oauth_callback
from auth.rpc.link_oauth_account import link_oauth_account
from auth.rpc.start_oauth_login import start_oauth_login
from auth.rpc.validate_session import validate_session
from auth.v1 import auth_pb2, auth_pb2_grpc
from servicekit.server import ServiceRegistration

if TYPE_CHECKING:
    from servicekit.server import Context


@dataclass(frozen=True)
class AuthDependencies:
    sessions: SessionRepository
    accounts: OauthAccountRepository
    providers: Providers
    clock: Clock = utc_now


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, dependencies: AuthDependencies) -> None:
        self._deps = dependencies

    async def CreateSession(
        self, request: auth_pb2.CreateSessionRequest, context: Context
    ) -> auth_pb2.CreateSessionResponse:
        return await create_session(request, self._deps.sessions, self._deps.clock)

    async def ValidateSession(
        self, request: auth_pb2.ValidateSessionRequest, context: Context
    ) -> auth_pb2.ValidateSessionResponse:
        return await validate_session(request, self._deps.sessions, self._deps.clock)

    async def DeleteSession(
        self, request: auth_pb2.DeleteSessionRequest, context: Context
    ) -> auth_pb2.DeleteSessionResponse:
        return await delete_session(request, self._deps.sessions, self._deps.clock)

    async def StartOauthLogin(
        self, request: auth_pb2.StartOauthLoginRequest, context: Context
    ) -> auth_pb2.StartOauthLoginResponse:
        return await start_oauth_login(request, self._deps.providers)

    async def HandleOauthCallback(
        self, request: auth_pb2.HandleOauthCallbackRequest, context: Context
    ) -> auth_pb2.HandleOauthCallbackResponse:
        return await handle_oauth_callback(request, self._deps.providers, self._deps.accounts)

    async def LinkOauthAccount(
        self, request: auth_pb2.LinkOauthAccountRequest, context: Context
    ) -> auth_pb2.LinkOauthAccountResponse:
        return await link_oauth_account(request, self._deps.accounts)

    async def GetOauthAccount(
        self, request: auth_pb2.GetOauthAccountRequest, context: Context
    ) -> auth_pb2.GetOauthAccountResponse:
        return await get_oauth_account(request, self._deps.accounts)


def registration(dependencies: AuthDependencies) -> ServiceRegistration:
    servicer = AuthServicer(dependencies)
    return ServiceRegistration(
        full_name=auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
        add_to_server=lambda server: auth_pb2_grpc.add_AuthServiceServicer_to_server(
            servicer, server
        ),
    )
