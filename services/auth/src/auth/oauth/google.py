"""Google: authorization code with PKCE S256, then the OpenID Connect id_token verified.

The id_token is a JWT signed with one of Google's keys (RS256). Its signature is checked
against the JWKS published at ``jwks_uri`` (cached for ``jwks_cache_seconds``, fetched
again once when a token names a key id the cache does not hold, which is how a key
rotation shows), then its issuer, audience (our client id), expiry (with
``leeway_seconds`` for clock skew) and ``email_verified``.

Plain httpx calls on the client the composition root owns, rather than authlib's
AsyncOAuth2Client: that class *is* an httpx client (one more connection pool per
provider, outside the root) and carries no type information; authlib and joserfc are
used for what they are best at (PKCE, JOSE).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from joserfc import jwt
from joserfc.errors import ClaimError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from auth.errors import ProviderRejected
from auth.oauth import _http, login
from auth.oauth.port import OauthIdentity, Provider
from auth.oauth.settings import ProviderSettings
from servicekit.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Clock = Callable[[], datetime]

SCOPE = "openid email profile"
ALGORITHMS = ("RS256",)
DID_NOT_VERIFY = "the identity token did not verify"


class GoogleSettings(ProviderSettings):
    """``AUTH_GOOGLE_*``: the OAuth client, and Google's endpoints (overridable for tests)."""

    model_config = SettingsConfigDict(env_prefix="AUTH_GOOGLE_")

    authorization_endpoint: str = "https://accounts.google.com/o/oauth2/v2/auth"
    token_endpoint: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    jwks_uri: str = "https://www.googleapis.com/oauth2/v3/certs"
    issuers: tuple[str, ...] = Field(
        default=("https://accounts.google.com", "accounts.google.com"),
        min_length=1,
        description="accepted values of the id_token's iss (Google uses both forms)",
    )
    jwks_cache_seconds: float = Field(
        default=3600.0, gt=0, description="how long fetched signing keys are trusted"
    )
    leeway_seconds: int = Field(
        default=60, ge=0, le=300, description="clock skew tolerated on exp, iat and nbf"
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


class GoogleProvider:
    """The Google adapter of :class:`~auth.oauth.port.OauthProvider`."""

    def __init__(
        self, settings: GoogleSettings, http: httpx.AsyncClient, *, clock: Clock = utc_now
    ) -> None:
        if not settings.configured:
            raise ValueError("GoogleProvider needs a configured client id and secret")
        self._settings = settings
        self._http = http
        self._clock = clock
        self._jwks = JwksCache(
            self._fetch_jwks, ttl=timedelta(seconds=settings.jwks_cache_seconds), clock=clock
        )

    @property
    def provider(self) -> Provider:
        return Provider.GOOGLE

    def authorization_url(self, state: str, code_verifier: str) -> str:
        return login.authorization_url(
            self._settings,
            self._settings.authorization_endpoint,
            scope=SCOPE,
            state=state,
            code_verifier=code_verifier,
            extra={"response_type": "code"},
        )

    async def exchange(self, code: str, code_verifier: str) -> OauthIdentity:
        if not code:
            raise InvalidArgument("code", "is required")
        if not code_verifier:
            raise InvalidArgument("code_verifier", "is required for google")
        id_token = await self._redeem(code, code_verifier)
        claims = await self.verify_id_token(id_token)
        return _identity(claims)

    async def verify_id_token(self, id_token: str) -> dict[str, Any]:
        """The claims of an id_token whose signature, issuer, audience, expiry and
        e-mail verification all check out; ProviderRejected otherwise."""
        keys = await self._jwks.keys()
        try:
            token = self._decode(id_token, keys)
        except InvalidKeyIdError:
            # An unknown key id: Google may have rotated its keys since the cache was filled.
            keys = await self._jwks.refetch(stale=keys)
            try:
                token = self._decode(id_token, keys)
            except InvalidKeyIdError as error:
                raise ProviderRejected(
                    Provider.GOOGLE, DID_NOT_VERIFY, detail="signed with an unknown key id"
                ) from error
        self._validate_claims(token.claims)
        return token.claims

    async def _redeem(self, code: str, code_verifier: str) -> str:
        response = await _http.send(
            self._http,
            Provider.GOOGLE,
            "POST",
            self._settings.token_endpoint,
            timeout_seconds=self._settings.timeout_seconds,
            refused="the authorization code was refused",
            headers={"Accept": "application/json"},
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self._settings.redirect_uri,
                "client_id": self._settings.client_id,
                "client_secret": self._settings.client_secret.get_secret_value(),
                "code_verifier": code_verifier,
            },
        )
        body = _http.json_object(Provider.GOOGLE, response)
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise ProviderRejected(
                Provider.GOOGLE, _http.INVALID_ANSWER, detail="token response without id_token"
            )
        return id_token

    async def _fetch_jwks(self) -> KeySet:
        response = await _http.send(
            self._http,
            Provider.GOOGLE,
            "GET",
            self._settings.jwks_uri,
            timeout_seconds=self._settings.timeout_seconds,
            refused="its signing keys could not be fetched",
            headers={"Accept": "application/json"},
        )
        body = _http.json_object(Provider.GOOGLE, response)
        keys = body.get("keys")
        if not isinstance(keys, list):
            raise ProviderRejected(
                Provider.GOOGLE, _http.INVALID_ANSWER, detail="JWKS without keys"
            )
        try:
            return KeySet.import_key_set({"keys": keys})
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise ProviderRejected(
                Provider.GOOGLE, _http.INVALID_ANSWER, detail=f"JWKS unusable: {error}"
            ) from error

    @staticmethod
    def _decode(id_token: str, keys: KeySet) -> jwt.Token:
        """Checks the signature; InvalidKeyIdError escapes so that the caller can refetch."""
        try:
            return jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except InvalidKeyIdError:
            raise
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise ProviderRejected(Provider.GOOGLE, DID_NOT_VERIFY, detail=str(error)) from error

    def _validate_claims(self, claims: dict[str, Any]) -> None:
        client_id = self._settings.client_id
        registry = jwt.JWTClaimsRegistry(
            now=int(self._clock().timestamp()),
            leeway=self._settings.leeway_seconds,
            iss={"essential": True, "values": list(self._settings.issuers)},
            aud={"essential": True, "value": client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except ClaimError as error:
            raise ProviderRejected(
                Provider.GOOGLE, DID_NOT_VERIFY, detail=f"{error.claim}: {error.description}"
            ) from error
        except (JoseError, ValueError, TypeError) as error:
            raise ProviderRejected(Provider.GOOGLE, DID_NOT_VERIFY, detail=str(error)) from error
        # OpenID Connect Core 3.1.3.7: with several audiences, the token must have been
        # issued to us (azp).
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
            raise ProviderRejected(
                Provider.GOOGLE, DID_NOT_VERIFY, detail="azp: several audiences, not issued to us"
            )
        if claims.get("email_verified") is not True:
            raise ProviderRejected(
                Provider.GOOGLE,
                "the account has no verified e-mail address",
                detail="email_verified",
            )
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise ProviderRejected(
                Provider.GOOGLE, "the account has no verified e-mail address", detail="email"
            )


def _identity(claims: dict[str, Any]) -> OauthIdentity:
    name = claims.get("name")
    picture = claims.get("picture")
    return OauthIdentity(
        provider=Provider.GOOGLE,
        provider_user_id=claims["sub"],
        email=claims["email"],
        name=name if isinstance(name, str) else "",
        avatar_url=picture if isinstance(picture, str) else "",
    )


class JwksCache:
    """A provider's signing keys, fetched on first use, kept for ``ttl``.

    Concurrent callers share one fetch; :meth:`refetch` fetches again unless another
    caller already replaced the stale set. A failed fetch is not remembered (the next
    login tries again) and expired keys are not served while the provider is down.
    """

    def __init__(
        self, fetch: Callable[[], Awaitable[KeySet]], *, ttl: timedelta, clock: Clock
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at = datetime.min.replace(tzinfo=UTC)
        self._lock = asyncio.Lock()

    async def keys(self) -> KeySet:
        keys = self._keys
        if keys is not None and self._fresh():
            return keys
        async with self._lock:
            if self._keys is None or not self._fresh():
                await self._refill()
            assert self._keys is not None
            return self._keys

    async def refetch(self, *, stale: KeySet) -> KeySet:
        async with self._lock:
            if self._keys is stale or self._keys is None:
                await self._refill()
            assert self._keys is not None
            return self._keys

    def _fresh(self) -> bool:
        return self._clock() - self._fetched_at < self._ttl

    async def _refill(self) -> None:
        self._keys = await self._fetch()
        self._fetched_at = self._clock()
