"""The port every OAuth provider adapter implements, and the identity it returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Provider(StrEnum):
    """The providers this service knows; the value is how messages and settings name it."""

    GOOGLE = "google"
    GITHUB = "github"


@dataclass(frozen=True)
class OauthIdentity:
    """An account as the provider vouches for it, with a verified e-mail address."""

    provider: Provider
    provider_user_id: str
    """The provider's stable id of the account (Google ``sub``, GitHub user id)."""
    email: str
    name: str
    avatar_url: str


class OauthProvider(Protocol):
    """One provider of the authorization code flow (with PKCE)."""

    @property
    def provider(self) -> Provider: ...

    def authorization_url(self, state: str, code_verifier: str) -> str:
        """Where to send the browser; carries ``state`` and the S256 challenge of the verifier."""
        ...

    async def exchange(self, code: str, code_verifier: str) -> OauthIdentity:
        """Exchanges the callback's ``code`` for the verified identity.

        Raises InvalidArgument (a field is empty), ProviderRejected (the code was refused
        or the identity did not verify) or ProviderUnavailable (network, timeout, 5xx).
        """
        ...
