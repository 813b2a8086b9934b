"""Login with an OAuth provider: the port, its Google and GitHub adapters over httpx.

    port.py       Provider, OauthIdentity, OauthProvider (the Protocol adapters implement)
    login.py      state, PKCE verifier and challenge, start_login, complete_login
    identity.py   usable_identity: provider data made fit for the user service's text rules
    google.py     GoogleSettings, GoogleProvider (PKCE + id_token checked against the JWKS)
    github.py     GitHubSettings, GitHubProvider (user + primary verified e-mail)
    providers.py  build_providers (from settings), Providers (lookup by Provider)
    memory.py     InMemoryOauthProvider: the port's fake, for tests of code that uses it
    settings.py   what the provider settings share
    _http.py      httpx calls with every failure translated into an auth error

Nothing here knows gRPC; the service's servicer converts to and from the proto.
"""

from auth.oauth.github import GitHubProvider, GitHubSettings
from auth.oauth.google import GoogleProvider, GoogleSettings
from auth.oauth.login import (
    LoginStart,
    check_state,
    code_challenge,
    complete_login,
    new_code_verifier,
    new_state,
    start_login,
)
from auth.oauth.memory import InMemoryOauthProvider
from auth.oauth.port import OauthIdentity, OauthProvider, Provider
from auth.oauth.providers import Providers, build_providers
from auth.oauth.settings import ProviderSettings

__all__ = [
    "GitHubProvider",
    "GitHubSettings",
    "GoogleProvider",
    "GoogleSettings",
    "InMemoryOauthProvider",
    "LoginStart",
    "OauthIdentity",
    "OauthProvider",
    "Provider",
    "ProviderSettings",
    "Providers",
    "build_providers",
    "check_state",
    "code_challenge",
    "complete_login",
    "new_code_verifier",
    "new_state",
    "start_login",
]
