"""The provider-independent steps of a login: state, PKCE, and the callback's checks.

StartOauthLogin is :func:`start_login`; HandleOauthCallback is :func:`complete_login`,
which checks the state (constant time) before the code is spent at the provider.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

# authlib ships no type information; these two helpers are wrapped with types below.
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

from auth.errors import StateMismatch
from auth.oauth.identity import usable_identity
from servicekit.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping

    from auth.oauth.port import OauthIdentity, OauthProvider
    from auth.oauth.settings import ProviderSettings

STATE_LENGTH = 32
"""Characters of a state: [A-Za-z0-9] from the system CSPRNG, about 190 bits."""

CODE_VERIFIER_LENGTH = 64
"""Characters of a PKCE verifier (RFC 7636 allows 43 to 128), about 380 bits."""


@dataclass(frozen=True)
class LoginStart:
    """What StartOauthLogin answers; the caller keeps ``state`` and ``code_verifier``."""

    authorization_url: str
    state: str
    # The state is in the URL anyway; the verifier must never leave the caller's keeping.
    code_verifier: str = field(repr=False)


def new_state() -> str:
    """A random, unguessable ``state`` for one login."""
    return str(generate_token(STATE_LENGTH))


def new_code_verifier() -> str:
    """A random PKCE ``code_verifier`` for one login."""
    return str(generate_token(CODE_VERIFIER_LENGTH))


def code_challenge(code_verifier: str) -> str:
    """The PKCE S256 challenge of a verifier: BASE64URL(SHA256(verifier)), unpadded."""
    return str(create_s256_code_challenge(code_verifier))


def authorization_url(
    settings: ProviderSettings,
    endpoint: str,
    *,
    scope: str,
    state: str,
    code_verifier: str,
    extra: Mapping[str, str] | None = None,
) -> str:
    """An authorization-code URL with ``state`` and the verifier's S256 challenge."""
    params = {
        **(extra or {}),
        "client_id": settings.client_id,
        "redirect_uri": settings.redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": code_challenge(code_verifier),
        "code_challenge_method": "S256",
    }
    return str(httpx.URL(endpoint).copy_merge_params(params))


def start_login(provider: OauthProvider) -> LoginStart:
    """A fresh state and verifier, and the provider's authorization URL carrying them."""
    state = new_state()
    code_verifier = new_code_verifier()
    return LoginStart(
        authorization_url=provider.authorization_url(state, code_verifier),
        state=state,
        code_verifier=code_verifier,
    )


def check_state(state: str, expected_state: str) -> None:
    """Raises InvalidArgument for an empty field and StateMismatch unless they are equal.

    Compared in constant time, as bytes (``hmac.compare_digest`` refuses non-ASCII str).
    """
    if not state:
        raise InvalidArgument("state", "is required")
    if not expected_state:
        raise InvalidArgument("expected_state", "is required")
    if not hmac.compare_digest(state.encode("utf-8"), expected_state.encode("utf-8")):
        raise StateMismatch()


async def complete_login(
    provider: OauthProvider, *, code: str, state: str, expected_state: str, code_verifier: str
) -> OauthIdentity:
    """Checks the callback, then exchanges the code for the verified identity.

    Raises InvalidArgument (``code``, ``state`` or ``expected_state`` empty, or what the
    provider requires, e.g. Google's ``code_verifier``), StateMismatch, then what
    :meth:`OauthProvider.exchange` raises. The provider is not called unless the state
    matches. The identity is made fit for the user service (:mod:`auth.oauth.identity`:
    name cleaned, odd avatar dropped, an e-mail or id the text policy refuses rejected).
    """
    if not code:
        raise InvalidArgument("code", "is required")
    check_state(state, expected_state)
    return usable_identity(await provider.exchange(code, code_verifier))
