"""Between protobuf messages and the auth domain."""

from __future__ import annotations

from datetime import datetime

from auth.domain import OauthAccount
from auth.oauth.identity import PROVIDER_USER_ID_MAX_LENGTH
from auth.oauth.port import OauthIdentity, Provider
from auth.v1 import auth_pb2
from servicekit.errors import InvalidArgument
from servicekit.text import clean_text
from servicekit.timestamps import to_timestamp

_PROVIDERS: dict[int, Provider] = {
    auth_pb2.PROVIDER_GOOGLE: Provider.GOOGLE,
    auth_pb2.PROVIDER_GITHUB: Provider.GITHUB,
}
_MESSAGES = {
    Provider.GOOGLE: auth_pb2.PROVIDER_GOOGLE,
    Provider.GITHUB: auth_pb2.PROVIDER_GITHUB,
}


def parse_provider(value: int) -> Provider:
    provider = _PROVIDERS.get(value)
    if provider is None:
        names = ", ".join(auth_pb2.Provider.Name(v) for v in _MESSAGES.values())
        raise InvalidArgument("provider", f"must be one of {names}")
    return provider


def parse_provider_user_id(value: str) -> str:
    """Required, within servicekit.text's policy, at most 255 characters."""
    return clean_text(value, field="provider_user_id", max_length=PROVIDER_USER_ID_MAX_LENGTH)


def provider_message(provider: Provider) -> auth_pb2.Provider.ValueType:
    return _MESSAGES[provider]


def session_message(session_id: str, user_id: str, expire_time: datetime) -> auth_pb2.Session:
    return auth_pb2.Session(id=session_id, user_id=user_id, expire_time=to_timestamp(expire_time))


def account_message(account: OauthAccount) -> auth_pb2.OauthAccount:
    return auth_pb2.OauthAccount(
        provider=provider_message(account.provider),
        provider_user_id=account.provider_user_id,
        user_id=str(account.user_id),
        create_time=to_timestamp(account.created_at),
    )


def identity_message(identity: OauthIdentity) -> auth_pb2.OauthIdentity:
    return auth_pb2.OauthIdentity(
        provider=provider_message(identity.provider),
        provider_user_id=identity.provider_user_id,
        email=identity.email,
        name=identity.name,
        avatar_url=identity.avatar_url,
    )
