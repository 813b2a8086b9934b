"""An in-memory :class:`~auth.oauth.port.OauthProvider`, shipped next to the port.

For tests of code that uses the port (the servicer, the login steps) without HTTP:
it keeps PKCE honest (a code redeems only with the verifier whose challenge was in
the authorization URL, once) and records every exchange. The HTTP-level fakes of the
real providers, for testing the adapters, are in ``fixtures/oauth.py``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from auth.errors import ProviderRejected
from auth.oauth.login import code_challenge
from auth.oauth.port import OauthIdentity, Provider
from servicekit.errors import InvalidArgument

if TYPE_CHECKING:
    from servicekit.errors import ServiceError


@dataclass(frozen=True)
class Exchange:
    """One call of :meth:`InMemoryOauthProvider.exchange`."""

    code: str
    code_verifier: str


class InMemoryOauthProvider:
    """A provider whose user consents at once, with the identity the test chose.

    ``failure``, when set, is raised by every exchange (e.g. ProviderUnavailable).
    """

    def __init__(
        self,
        provider: Provider = Provider.GOOGLE,
        *,
        identity: OauthIdentity | None = None,
        failure: ServiceError | None = None,
    ) -> None:
        self._provider = provider
        self.identity = identity or OauthIdentity(
            provider=provider,
            provider_user_id=f"{provider}-user-1",
            email=f"user1@{provider}.example",
            name="User One",
            avatar_url=f"https://{provider}.example/avatar/1",
        )
        self.failure = failure
        self.exchanges: list[Exchange] = []
        self._grants: dict[str, tuple[str, OauthIdentity]] = {}

    @property
    def provider(self) -> Provider:
        return self._provider

    def authorization_url(self, state: str, code_verifier: str) -> str:
        return str(
            httpx.URL(f"https://{self._provider}.invalid/authorize").copy_merge_params(
                {
                    "state": state,
                    "code_challenge": code_challenge(code_verifier),
                    "code_challenge_method": "S256",
                }
            )
        )

    def authorize(self, authorization_url: str, identity: OauthIdentity | None = None) -> str:
        """The user consents; returns the code, which redeems for ``identity`` (default:
        :attr:`identity`) with the verifier of the URL's challenge."""
        challenge = httpx.URL(authorization_url).params.get("code_challenge", "")
        code = f"code-{secrets.token_urlsafe(8)}"
        self._grants[code] = (challenge, identity or self.identity)
        return code

    async def exchange(self, code: str, code_verifier: str) -> OauthIdentity:
        self.exchanges.append(Exchange(code, code_verifier))
        if not code:
            raise InvalidArgument("code", "is required")
        if not code_verifier:
            raise InvalidArgument("code_verifier", f"is required for {self._provider}")
        if self.failure is not None:
            raise self.failure
        grant = self._grants.pop(code, None)
        if grant is None or grant[0] != code_challenge(code_verifier):
            raise ProviderRejected(self._provider, "the authorization code was refused")
        return grant[1]
