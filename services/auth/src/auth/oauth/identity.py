"""What a provider says about an account, made fit for the user service's rules.

A provider's data is not the caller's input: the person logging in cannot fix an odd
display name on their Google or GitHub profile, so refusing it would lock them out.
So the display name is *cleaned* (servicekit.text.sanitize_text: control, bidirectional
and invisible formatting characters dropped, line breaks made spaces, cut to the user
service's 200 characters; "" when nothing visible is left) and an avatar URL that is
not a plain absolute http(s) URL is dropped.

The e-mail address and the account id are *identities*, not decoration: cleaning
"ann\u202e@example.com" into "ann@example.com" would log its holder into Ann's
account. An address or id that the text policy refuses rejects the login
(ProviderRejected, PERMISSION_DENIED), with the offending code point in the log.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from auth.errors import ProviderRejected
from auth.oauth.port import OauthIdentity
from servicekit.errors import InvalidArgument
from servicekit.text import clean_text, sanitize_text

DISPLAY_NAME_MAX_LENGTH = 200  # user.v1 CreateUserRequest.name
AVATAR_URL_MAX_LENGTH = 2048  # user.v1 CreateUserRequest.avatar_url
EMAIL_MAX_LENGTH = 254  # user.v1 CreateUserRequest.email
PROVIDER_USER_ID_MAX_LENGTH = 255
UNUSABLE_EMAIL = "the account's e-mail address cannot be used"
UNUSABLE_ID = "the account's id cannot be used"


def usable_identity(identity: OauthIdentity) -> OauthIdentity:
    """``identity`` with its name and avatar cleaned; ProviderRejected when its e-mail
    address or account id breaks the text policy."""
    email = _identity_text(identity, identity.email, "email", EMAIL_MAX_LENGTH, UNUSABLE_EMAIL)
    provider_user_id = _identity_text(
        identity,
        identity.provider_user_id,
        "provider_user_id",
        PROVIDER_USER_ID_MAX_LENGTH,
        UNUSABLE_ID,
    )
    return dataclasses.replace(
        identity,
        provider_user_id=provider_user_id,
        email=email,
        name=sanitize_text(identity.name, max_length=DISPLAY_NAME_MAX_LENGTH),
        avatar_url=_usable_avatar_url(identity.avatar_url),
    )


def _identity_text(
    identity: OauthIdentity, value: str, field: str, max_length: int, problem: str
) -> str:
    try:
        return clean_text(value, field=field, max_length=max_length)
    except InvalidArgument as refused:
        raise ProviderRejected(identity.provider, problem, detail=refused.message) from None


def _usable_avatar_url(value: str) -> str:
    """The URL when the user service would take it as it is, else ""."""
    try:
        url = clean_text(value, field="avatar_url", max_length=AVATAR_URL_MAX_LENGTH)
        parts = urlsplit(url)
        _ = parts.port  # ValueError on a port that is not a number in range
    except (InvalidArgument, ValueError):
        return ""
    plain = parts.scheme in ("http", "https") and parts.hostname
    return url if plain and not any(c.isspace() for c in url) else ""
