"""The configured providers, built once by the composition root and looked up per call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from auth.errors import ProviderNotConfigured
from auth.oauth.github import GitHubProvider, GitHubSettings
from auth.oauth.google import GoogleProvider, GoogleSettings, utc_now
from auth.oauth.port import Provider

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from datetime import datetime

    import httpx

    from auth.oauth.port import OauthProvider
    from auth.oauth.settings import ProviderSettings

SETTINGS_OF: Mapping[Provider, type[ProviderSettings]] = {
    Provider.GOOGLE: GoogleSettings,
    Provider.GITHUB: GitHubSettings,
}


class Providers:
    """The providers configured on this service; the others are absent.

    Any :class:`~auth.oauth.port.OauthProvider` will do, so tests pass fakes in.
    """

    def __init__(self, providers: Mapping[Provider, OauthProvider]) -> None:
        self._providers = dict(providers)

    def get(self, provider: Provider) -> OauthProvider:
        """The provider, or ProviderNotConfigured naming the environment variables to set."""
        try:
            return self._providers[provider]
        except KeyError:
            raise ProviderNotConfigured(
                provider, SETTINGS_OF[provider].required_env_vars()
            ) from None

    def __contains__(self, provider: object) -> bool:
        return provider in self._providers

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._providers)


def build_providers(
    http: httpx.AsyncClient,
    *,
    google: GoogleSettings,
    github: GitHubSettings,
    clock: Callable[[], datetime] = utc_now,
) -> Providers:
    """The providers whose client id and secret are set, all sharing ``http``.

    The composition root reads the settings (``GoogleSettings()``, ``GitHubSettings()``)
    and owns the client: it closes it at shutdown.
    """
    providers: dict[Provider, OauthProvider] = {}
    if google.configured:
        providers[Provider.GOOGLE] = GoogleProvider(google, http, clock=clock)
    if github.configured:
        providers[Provider.GITHUB] = GitHubProvider(github, http)
    return Providers(providers)
