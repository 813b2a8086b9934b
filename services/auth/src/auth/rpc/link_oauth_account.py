"""LinkOauthAccount: idempotent for the same user, ALREADY_EXISTS for another."""

from __future__ import annotations

from auth.errors import AccountLinkedToAnotherUser
from auth.repository import OauthAccountRepository
from auth.rpc.convert import account_message, parse_provider, parse_provider_user_id
from auth.v1 import auth_pb2
from servicekit.validation import parse_uuid


async def link_oauth_account(
    request: auth_pb2.LinkOauthAccountRequest, accounts: OauthAccountRepository
) -> auth_pb2.LinkOauthAccountResponse:
    provider = parse_provider(request.provider)
    provider_user_id = parse_provider_user_id(request.provider_user_id)
    user_id = parse_uuid("user_id", request.user_id)
    account = await accounts.link(provider, provider_user_id, user_id)
    if account.user_id != user_id:
        raise AccountLinkedToAnotherUser(provider.value, provider_user_id)
    return auth_pb2.LinkOauthAccountResponse(account=account_message(account))
