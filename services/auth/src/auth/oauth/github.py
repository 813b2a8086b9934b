"""GitHub: authorization code (with PKCE S256), then the user and its verified e-mail.

GitHub answers a refused code with HTTP 200 and an ``error`` field: that is
ProviderRejected like any 4xx. The e-mail is the profile's public one when it has
one (GitHub only lets a user publish an address it has verified), otherwise the
primary verified address from ``GET /user/emails``; without one the login is rejected.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx
from pydantic_settings import SettingsConfigDict

from auth.errors import ProviderRejected
from auth.oauth import _http, login
from auth.oauth.port import OauthIdentity, Provider
from auth.oauth.settings import ProviderSettings
from servicekit.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping

SCOPE = "read:user user:email"
API_VERSION = "2022-11-28"
NO_VERIFIED_EMAIL = "the account has no verified e-mail address"
_TOKEN_CHARACTERS = re.compile(r"[\x21-\x7e]{1,1024}")


class GitHubSettings(ProviderSettings):
    """``AUTH_GITHUB_*``: the OAuth app, and GitHub's URLs (overridable for tests)."""

    model_config = SettingsConfigDict(env_prefix="AUTH_GITHUB_")

    authorization_endpoint: str = "https://github.com/login/oauth/authorize"
    token_endpoint: str = "https://github.com/login/oauth/access_token"  # noqa: S105 - a URL
    api_base_url: str = "https://api.github.com"


class GitHubProvider:
    """The GitHub adapter of :class:`~auth.oauth.port.OauthProvider`."""

    def __init__(self, settings: GitHubSettings, http: httpx.AsyncClient) -> None:
        if not settings.configured:
            raise ValueError("GitHubProvider needs a configured client id and secret")
        self._settings = settings
        self._http = http

    @property
    def provider(self) -> Provider:
        return Provider.GITHUB

    def authorization_url(self, state: str, code_verifier: str) -> str:
        return login.authorization_url(
            self._settings,
            self._settings.authorization_endpoint,
            scope=SCOPE,
            state=state,
            code_verifier=code_verifier,
        )

    async def exchange(self, code: str, code_verifier: str) -> OauthIdentity:
        if not code:
            raise InvalidArgument("code", "is required")
        access_token = await self._redeem(code, code_verifier)
        user = await self._get_object("/user", access_token)
        user_id = user.get("id")
        login = user.get("login")
        if isinstance(user_id, bool) or not isinstance(user_id, int) or not isinstance(login, str):
            raise ProviderRejected(
                Provider.GITHUB, _http.INVALID_ANSWER, detail="user without id or login"
            )
        email = user.get("email")
        if not isinstance(email, str) or not email:
            email = await self._primary_verified_email(access_token)
        name = user.get("name")
        avatar_url = user.get("avatar_url")
        return OauthIdentity(
            provider=Provider.GITHUB,
            provider_user_id=str(user_id),
            email=email,
            name=name if isinstance(name, str) and name else login,
            avatar_url=avatar_url if isinstance(avatar_url, str) else "",
        )

    async def _redeem(self, code: str, code_verifier: str) -> str:
        form = {
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret.get_secret_value(),
            "code": code,
            "redirect_uri": self._settings.redirect_uri,
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        response = await _http.send(
            self._http,
            Provider.GITHUB,
            "POST",
            self._settings.token_endpoint,
            timeout_seconds=self._settings.timeout_seconds,
            refused="the authorization code was refused",
            headers={"Accept": "application/json"},
            data=form,
        )
        body = _http.json_object(Provider.GITHUB, response)
        error = body.get("error")
        if error is not None:
            raise ProviderRejected(
                Provider.GITHUB, "the authorization code was refused", detail=f"error {error!r}"
            )
        access_token = body.get("access_token")
        # It goes into a header: printable ASCII without spaces, or it is not a token.
        if not isinstance(access_token, str) or not _TOKEN_CHARACTERS.fullmatch(access_token):
            raise ProviderRejected(
                Provider.GITHUB, _http.INVALID_ANSWER, detail="token response without access_token"
            )
        return access_token

    async def _primary_verified_email(self, access_token: str) -> str:
        response = await self._get("/user/emails", access_token)
        for entry in _http.json_array(Provider.GITHUB, response):
            if (
                isinstance(entry, dict)
                and entry.get("primary") is True
                and entry.get("verified") is True
                and isinstance(entry.get("email"), str)
                and entry["email"]
            ):
                return str(entry["email"])
        raise ProviderRejected(
            Provider.GITHUB, NO_VERIFIED_EMAIL, detail="no primary verified address"
        )

    async def _get_object(self, path: str, access_token: str) -> dict[str, Any]:
        return _http.json_object(Provider.GITHUB, await self._get(path, access_token))

    async def _get(self, path: str, access_token: str) -> httpx.Response:
        return await _http.send(
            self._http,
            Provider.GITHUB,
            "GET",
            self._settings.api_base_url.rstrip("/") + path,
            timeout_seconds=self._settings.timeout_seconds,
            refused="the access token was refused",
            headers=_api_headers(access_token),
        )


def _api_headers(access_token: str) -> Mapping[str, str]:
    return {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {access_token}",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "backend-kit-auth",
    }
