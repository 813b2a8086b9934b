"""GetOauthAccount: the link of a provider account, or NOT_FOUND."""

from __future__ import annotations

from auth.errors import OauthAccountNotFound
from auth.repository import OauthAccountRepository
from auth.rpc.convert import account_message, parse_provider, parse_provider_user_id
from auth.v1 import auth_pb2


async def get_oauth_account(
    request: auth_pb2.GetOauthAccountRequest, accounts: OauthAccountRepository
) -> auth_pb2.GetOauthAccountResponse:
    provider = parse_provider(request.provider)
    provider_user_id = parse_provider_user_id(request.provider_user_id)
    account = await accounts.get(provider, provider_user_id)
    if account is None:
        raise OauthAccountNotFound(provider.value, provider_user_id)
    return auth_pb2.GetOauthAccountResponse(account=account_message(account))
