"""HandleOauthCallback: state checked, code exchanged, identity verified, link looked up."""

from __future__ import annotations

import logging

from auth.errors import ProviderRejected
from auth.oauth import Providers, complete_login
from auth.repository import OauthAccountRepository
from auth.rpc.convert import identity_message, parse_provider
from auth.v1 import auth_pb2

logger = logging.getLogger(__name__)


async def handle_oauth_callback(
    request: auth_pb2.HandleOauthCallbackRequest,
    providers: Providers,
    accounts: OauthAccountRepository,
) -> auth_pb2.HandleOauthCallbackResponse:
    provider = providers.get(parse_provider(request.provider))
    try:
        identity = await complete_login(
            provider,
            code=request.code,
            state=request.state,
            expected_state=request.expected_state,
            code_verifier=request.code_verifier,
        )
    except ProviderRejected as rejected:
        # The caller gets the generic message; the operator gets what failed.
        logger.warning("%s login rejected: %s", rejected.provider, rejected.detail)
        raise
    account = await accounts.get(identity.provider, identity.provider_user_id)
    return auth_pb2.HandleOauthCallbackResponse(
        identity=identity_message(identity),
        user_id=str(account.user_id) if account is not None else "",
    )
