"""Provider settings from the environment, and which providers are built from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from auth.errors import ProviderNotConfigured
from auth.oauth.github import GitHubProvider, GitHubSettings
from auth.oauth.google import GoogleProvider, GoogleSettings
from auth.oauth.memory import InMemoryOauthProvider
from auth.oauth.port import Provider
from auth.oauth.providers import Providers, build_providers

if TYPE_CHECKING:
    import httpx

ENV_PREFIXES = ("AUTH_GOOGLE_", "AUTH_GITHUB_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AUTH_GOOGLE_* / AUTH_GITHUB_* from the machine running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)


def configure(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv(f"{prefix}CLIENT_ID", "client-id")
    monkeypatch.setenv(f"{prefix}CLIENT_SECRET", "client-secret-value")
    monkeypatch.setenv(f"{prefix}REDIRECT_URI", "https://app.test/callback")


@pytest.mark.parametrize(
    ("provider", "env_vars"),
    [
        pytest.param(
            Provider.GOOGLE,
            "AUTH_GOOGLE_CLIENT_ID, AUTH_GOOGLE_CLIENT_SECRET, AUTH_GOOGLE_REDIRECT_URI",
            id="google",
        ),
        pytest.param(
            Provider.GITHUB,
            "AUTH_GITHUB_CLIENT_ID, AUTH_GITHUB_CLIENT_SECRET, AUTH_GITHUB_REDIRECT_URI",
            id="github",
        ),
    ],
)
def test_absent_provider_is_not_configured_and_names_the_env_vars(
    http: httpx.AsyncClient, provider: Provider, env_vars: str
) -> None:
    providers = build_providers(http, google=GoogleSettings(), github=GitHubSettings())

    with pytest.raises(ProviderNotConfigured) as caught:
        providers.get(provider)

    assert caught.value.message == (
        f"the {provider} provider is not configured on this service: set {env_vars}"
    )
    assert provider not in providers


@pytest.mark.parametrize(
    ("prefix", "present", "absent", "adapter"),
    [
        pytest.param("AUTH_GOOGLE_", Provider.GOOGLE, Provider.GITHUB, GoogleProvider, id="google"),
        pytest.param("AUTH_GITHUB_", Provider.GITHUB, Provider.GOOGLE, GitHubProvider, id="github"),
    ],
)
def test_configured_provider_is_built_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    http: httpx.AsyncClient,
    prefix: str,
    present: Provider,
    absent: Provider,
    adapter: type[object],
) -> None:
    configure(monkeypatch, prefix)

    providers = build_providers(http, google=GoogleSettings(), github=GitHubSettings())

    assert isinstance(providers.get(present), adapter)
    assert providers.get(present).provider == present
    assert list(providers) == [present]
    with pytest.raises(ProviderNotConfigured):
        providers.get(absent)


def test_endpoints_and_timeout_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, "AUTH_GOOGLE_")
    monkeypatch.setenv("AUTH_GOOGLE_TOKEN_ENDPOINT", "https://google.test/token")
    monkeypatch.setenv("AUTH_GOOGLE_JWKS_URI", "https://google.test/certs")
    monkeypatch.setenv("AUTH_GOOGLE_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("AUTH_GITHUB_API_BASE_URL", "https://api.github.test")

    google = GoogleSettings()

    assert google.token_endpoint == "https://google.test/token"
    assert google.jwks_uri == "https://google.test/certs"
    assert google.timeout_seconds == 2.5
    assert google.client_secret.get_secret_value() == "client-secret-value"
    assert "client-secret-value" not in repr(google)
    assert GitHubSettings().api_base_url == "https://api.github.test"


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        pytest.param(
            {"CLIENT_ID": "id"},
            "AUTH_GOOGLE_CLIENT_SECRET, AUTH_GOOGLE_REDIRECT_URI",
            id="only-client-id",
        ),
        pytest.param(
            {"CLIENT_SECRET": "client-secret-value"},
            "AUTH_GOOGLE_CLIENT_ID, AUTH_GOOGLE_REDIRECT_URI",
            id="only-client-secret",
        ),
        pytest.param(
            {"CLIENT_ID": "id", "CLIENT_SECRET": "client-secret-value"},
            "AUTH_GOOGLE_REDIRECT_URI",
            id="no-redirect-uri",
        ),
    ],
)
def test_half_a_configuration_fails_at_start_up_without_printing_the_secret(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], missing: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(f"AUTH_GOOGLE_{name}", value)

    with pytest.raises(ValidationError) as caught:
        GoogleSettings()

    assert f"set {missing}" in str(caught.value)
    assert "client-secret-value" not in str(caught.value)


def test_redirect_uri_alone_leaves_the_provider_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_GITHUB_REDIRECT_URI", "https://app.test/auth/github/callback")

    assert not GitHubSettings().configured


@pytest.mark.parametrize(
    "setting",
    [
        pytest.param({"timeout_seconds": 0}, id="zero-timeout"),
        pytest.param({"timeout_seconds": -1}, id="negative-timeout"),
        pytest.param({"leeway_seconds": 3600}, id="leeway-an-hour"),
        pytest.param({"issuers": ()}, id="no-issuer"),
    ],
)
def test_unreasonable_settings_are_refused(setting: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GoogleSettings.model_validate(setting)


def test_providers_accept_any_implementation_of_the_port() -> None:
    fake = InMemoryOauthProvider(Provider.GITHUB)
    providers = Providers({Provider.GITHUB: fake})

    assert providers.get(Provider.GITHUB) is fake
    with pytest.raises(ProviderNotConfigured, match="AUTH_GOOGLE_CLIENT_ID"):
        providers.get(Provider.GOOGLE)
