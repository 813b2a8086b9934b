"""StartOauthLogin: a fresh state and PKCE verifier, and where to send the browser."""

from __future__ import annotations

from auth.oauth import Providers, start_login
from auth.rpc.convert import parse_provider
from auth.v1 import auth_pb2


async def start_oauth_login(
    request: auth_pb2.StartOauthLoginRequest, providers: Providers
) -> auth_pb2.StartOauthLoginResponse:
    provider = providers.get(parse_provider(request.provider))
    login = start_login(provider)
    return auth_pb2.StartOauthLoginResponse(
        authorization_url=login.authorization_url,
        state=login.state,
        code_verifier=login.code_verifier,
    )
