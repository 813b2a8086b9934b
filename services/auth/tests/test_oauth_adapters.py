"""What every OAuth adapter must do, one table over Google and GitHub against their
fakes: the authorization URL, the identity of a login, the configured timeout on every
call, empty input refused before any call, and the real endpoints by default.

What only one provider does (Google's id_token and JWKS, GitHub's e-mail addresses) is in
test_google.py and test_github.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from auth.oauth.github import GitHubProvider, GitHubSettings
from auth.oauth.google import GoogleProvider, GoogleSettings
from auth.oauth.port import OauthIdentity, OauthProvider, Provider
from fixtures.oauth import (
    GITHUB_CLIENT_ID,
    GITHUB_REDIRECT_URI,
    GOOGLE_CLIENT_ID,
    GOOGLE_REDIRECT_URI,
    FakeGitHub,
    FakeGoogle,
)
from servicekit.errors import InvalidArgument

from .support import CHALLENGE, STATE, VERIFIER, route

if TYPE_CHECKING:
    import respx

    from fixtures.clock import FrozenClock


@dataclass(frozen=True)
class Adapter:
    """One provider's adapter on its fake, and what the shared tests expect of it."""

    fake: FakeGoogle | FakeGitHub
    build: Callable[..., OauthProvider]
    """The adapter on ``fake.settings(**overrides)``."""
    routes_of_a_login: Callable[[], list[respx.Route | None]]
    """Make the next login call every endpoint; the routes it will call."""
    authorization_params: dict[str, str]
    """The query of the authorization URL, less state and PKCE challenge."""
    identity: OauthIdentity
    """What a login as the fake's default user returns."""

    @property
    def provider(self) -> OauthProvider:
        return self.build()

    async def login(self, provider: OauthProvider) -> OauthIdentity:
        code = self.fake.authorize(provider.authorization_url(STATE, VERIFIER))
        return await provider.exchange(code, VERIFIER)


def google_adapter(
    router: respx.MockRouter, http: httpx.AsyncClient, clock: FrozenClock
) -> Adapter:
    fake = FakeGoogle(clock=clock).install(router)
    return Adapter(
        fake=fake,
        build=lambda **overrides: GoogleProvider(fake.settings(**overrides), http, clock=clock),
        routes_of_a_login=lambda: [fake.token_route, fake.jwks_route],
        authorization_params={
            "response_type": "code",
            "client_id": GOOGLE_CLIENT_ID,
            "redirect_uri": GOOGLE_REDIRECT_URI,
            "scope": "openid email profile",
        },
        identity=OauthIdentity(
            provider=Provider.GOOGLE,
            provider_user_id="110169484474386276334",
            email="ada@example.com",
            name="Ada Lovelace",
            avatar_url="https://lh3.googleusercontent.test/a/ada",
        ),
    )


def github_adapter(
    router: respx.MockRouter, http: httpx.AsyncClient, clock: FrozenClock
) -> Adapter:
    fake = FakeGitHub().install(router)

    def routes_of_a_login() -> list[respx.Route | None]:
        fake.user["email"] = None  # so that the e-mails endpoint is asked too
        return [fake.token_route, fake.user_route, fake.emails_route]

    return Adapter(
        fake=fake,
        build=lambda **overrides: GitHubProvider(fake.settings(**overrides), http),
        routes_of_a_login=routes_of_a_login,
        authorization_params={
            "client_id": GITHUB_CLIENT_ID,
            "redirect_uri": GITHUB_REDIRECT_URI,
            "scope": "read:user user:email",
        },
        identity=OauthIdentity(
            provider=Provider.GITHUB,
            provider_user_id="583231",
            email="octocat@example.com",
            name="The Octocat",
            avatar_url="https://avatars.githubusercontent.test/u/583231",
        ),
    )


ADAPTERS = {"google": google_adapter, "github": github_adapter}


@pytest.fixture(params=list(ADAPTERS))
def adapter(
    request: pytest.FixtureRequest,
    router: respx.MockRouter,
    http: httpx.AsyncClient,
    clock: FrozenClock,
) -> Adapter:
    name: str = request.param
    return ADAPTERS[name](router, http, clock)


def test_authorization_url_carries_client_redirect_scope_state_and_s256_challenge(
    adapter: Adapter,
) -> None:
    url = httpx.URL(adapter.provider.authorization_url(STATE, VERIFIER))

    assert str(url.copy_with(query=None)) == adapter.fake.authorization_endpoint
    assert dict(url.params) == {
        **adapter.authorization_params,
        "state": STATE,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    assert VERIFIER not in str(url)


async def test_login_returns_the_identity(adapter: Adapter) -> None:
    assert await adapter.login(adapter.provider) == adapter.identity


async def test_every_call_has_the_configured_timeout(adapter: Adapter) -> None:
    provider = adapter.build(timeout_seconds=2.5)
    routes = adapter.routes_of_a_login()

    await adapter.login(provider)

    for called in routes:
        assert route(called).calls.last.request.extensions["timeout"] == {
            "connect": 2.5,
            "read": 2.5,
            "write": 2.5,
            "pool": 2.5,
        }


@pytest.mark.parametrize(
    ("adapter", "code", "code_verifier", "field"),
    [
        pytest.param("google", "", VERIFIER, "code", id="google-empty-code"),
        pytest.param("google", "4/some-code", "", "code_verifier", id="google-empty-verifier"),
        pytest.param("github", "", VERIFIER, "code", id="github-empty-code"),
    ],
    indirect=["adapter"],
)
async def test_empty_input_is_invalid_argument_without_any_call(
    adapter: Adapter, router: respx.MockRouter, code: str, code_verifier: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await adapter.provider.exchange(code, code_verifier)

    assert caught.value.field == field
    assert router.calls.call_count == 0


@pytest.mark.parametrize(
    ("settings_type", "expected"),
    [
        pytest.param(
            GoogleSettings,
            {
                "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
                "token_endpoint": "https://oauth2.googleapis.com/token",
                "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
                "issuers": ("https://accounts.google.com", "accounts.google.com"),
                "timeout_seconds": 5.0,
            },
            id="google",
        ),
        pytest.param(
            GitHubSettings,
            {
                "authorization_endpoint": "https://github.com/login/oauth/authorize",
                "token_endpoint": "https://github.com/login/oauth/access_token",
                "api_base_url": "https://api.github.com",
            },
            id="github",
        ),
    ],
)
def test_settings_default_to_the_providers_real_endpoints(
    settings_type: type[GoogleSettings] | type[GitHubSettings], expected: dict[str, Any]
) -> None:
    settings = settings_type(client_id="id", client_secret="secret", redirect_uri="https://a/cb")

    assert {name: getattr(settings, name) for name in expected} == expected
