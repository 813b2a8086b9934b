"""The GitHub adapter against FakeGitHub: code exchange, user, primary verified e-mail."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from auth.errors import ProviderRejected, ProviderUnavailable
from auth.oauth.github import GitHubProvider
from auth.oauth.port import OauthIdentity
from fixtures.oauth import GITHUB_CLIENT_ID, GITHUB_REDIRECT_URI, FakeGitHub

from .support import STATE, VERIFIER, route


async def login(github: GitHubProvider, fake: FakeGitHub) -> OauthIdentity:
    code = fake.authorize(github.authorization_url(STATE, VERIFIER))
    return await github.exchange(code, VERIFIER)


def email(address: str, *, primary: bool, verified: bool) -> dict[str, Any]:
    return {"email": address, "primary": primary, "verified": verified, "visibility": None}


# --- identity and e-mail -----------------------------------------------------------------


async def test_public_email_is_used_without_asking_for_the_addresses(
    github: GitHubProvider, fake_github: FakeGitHub
) -> None:
    identity = await login(github, fake_github)

    assert identity.email == "octocat@example.com"  # the whole identity: test_oauth_adapters.py
    assert not route(fake_github.emails_route).called


async def test_requests_carry_the_verifier_accept_json_and_the_bearer_token(
    github: GitHubProvider, fake_github: FakeGitHub
) -> None:
    code = fake_github.authorize(github.authorization_url(STATE, VERIFIER))
    await github.exchange(code, VERIFIER)

    token_request = route(fake_github.token_route).calls.last.request
    assert token_request.headers["accept"] == "application/json"
    assert dict(httpx.QueryParams(token_request.content.decode())) == {
        "client_id": GITHUB_CLIENT_ID,
        "client_secret": fake_github.client_secret,
        "code": code,
        "redirect_uri": GITHUB_REDIRECT_URI,
        "code_verifier": VERIFIER,
    }
    user_request = route(fake_github.user_route).calls.last.request
    assert user_request.headers["authorization"].startswith("Bearer gho_")
    assert user_request.headers["accept"] == "application/vnd.github+json"
    assert user_request.headers["x-github-api-version"] == "2022-11-28"


@pytest.mark.parametrize(
    ("emails", "expected"),
    [
        pytest.param(
            [email("ada@example.com", primary=True, verified=True)],
            "ada@example.com",
            id="only-primary-verified",
        ),
        pytest.param(
            [
                email("old@example.com", primary=False, verified=True),
                email("ada@example.com", primary=True, verified=True),
                email("new@example.com", primary=False, verified=False),
            ],
            "ada@example.com",
            id="primary-verified-among-others",
        ),
        pytest.param(
            [
                "not-an-object",
                {"email": 7, "primary": True, "verified": True},
                email("ada@example.com", primary=True, verified=True),
            ],
            "ada@example.com",
            id="malformed-entries-skipped",
        ),
    ],
)
async def test_without_public_email_the_primary_verified_address_is_used(
    github: GitHubProvider, fake_github: FakeGitHub, emails: list[Any], expected: str
) -> None:
    fake_github.user["email"] = None
    fake_github.emails = emails

    identity = await login(github, fake_github)

    assert identity.email == expected
    assert route(fake_github.emails_route).call_count == 1


@pytest.mark.parametrize(
    "emails",
    [
        pytest.param([], id="no-addresses"),
        pytest.param(
            [email("ada@example.com", primary=True, verified=False)], id="primary-unverified"
        ),
        pytest.param(
            [email("ada@example.com", primary=False, verified=True)],
            id="verified-but-not-primary",
        ),
        pytest.param(
            [{"email": "ada@example.com", "primary": True, "verified": "true"}],
            id="verified-a-string",
        ),
    ],
)
async def test_no_verified_email_is_rejected(
    github: GitHubProvider, fake_github: FakeGitHub, emails: list[Any]
) -> None:
    fake_github.user["email"] = None
    fake_github.emails = emails

    with pytest.raises(ProviderRejected) as caught:
        await login(github, fake_github)

    assert caught.value.message == (
        "github rejected the login: the account has no verified e-mail address"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("Mona Lisa", "Mona Lisa", id="name"),
        pytest.param(None, "octocat", id="no-name-uses-login"),
        pytest.param("", "octocat", id="empty-name-uses-login"),
    ],
)
async def test_name_falls_back_to_login(
    github: GitHubProvider, fake_github: FakeGitHub, name: str | None, expected: str
) -> None:
    fake_github.user["name"] = name

    assert (await login(github, fake_github)).name == expected


@pytest.mark.parametrize(
    "user",
    [
        pytest.param({"id": None}, id="no-id"),
        pytest.param({"id": "583231"}, id="id-a-string"),
        pytest.param({"id": True}, id="id-a-bool"),
        pytest.param({"login": None}, id="no-login"),
    ],
)
async def test_malformed_user_is_rejected(
    github: GitHubProvider, fake_github: FakeGitHub, user: dict[str, Any]
) -> None:
    fake_github.user.update(user)

    with pytest.raises(ProviderRejected, match="it gave an invalid answer"):
        await login(github, fake_github)


# --- refused codes -----------------------------------------------------------------------


async def test_bad_code_answered_200_with_error_is_rejected(
    github: GitHubProvider, fake_github: FakeGitHub
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await github.exchange("not-a-code-github-gave", VERIFIER)

    assert caught.value.message == "github rejected the login: the authorization code was refused"
    assert "bad_verification_code" in caught.value.detail
    assert "not-a-code-github-gave" not in caught.value.message
    assert not route(fake_github.user_route).called


@pytest.mark.parametrize(
    ("code_verifier", "settings", "error"),
    [
        pytest.param("x" * 43, {}, "bad_verification_code", id="another-verifier"),
        pytest.param("", {}, "bad_verification_code", id="no-verifier"),
        pytest.param(
            VERIFIER, {"client_secret": "wrong"}, "incorrect_client_credentials", id="bad-secret"
        ),
        pytest.param(
            VERIFIER,
            {"redirect_uri": "https://elsewhere.test/cb"},
            "redirect_uri_mismatch",
            id="other-redirect-uri",
        ),
    ],
)
async def test_code_redeemed_wrongly_is_rejected(
    fake_github: FakeGitHub,
    http: httpx.AsyncClient,
    code_verifier: str,
    settings: dict[str, Any],
    error: str,
) -> None:
    good = GitHubProvider(fake_github.settings(), http)
    code = fake_github.authorize(good.authorization_url(STATE, VERIFIER))
    github = GitHubProvider(fake_github.settings(**settings), http)

    with pytest.raises(ProviderRejected) as caught:
        await github.exchange(code, code_verifier)

    assert error in caught.value.detail


# --- HTTP failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "response", "error", "message"),
    [
        pytest.param(
            "token",
            httpx.ConnectTimeout,
            ProviderUnavailable,
            "github is unavailable: it timed out; retry later",
            id="token-timeout",
        ),
        pytest.param(
            "token",
            httpx.ConnectError,
            ProviderUnavailable,
            "github is unavailable: it could not be reached; retry later",
            id="token-connection-refused",
        ),
        pytest.param(
            "token",
            httpx.Response(502),
            ProviderUnavailable,
            "github is unavailable: it answered HTTP 502; retry later",
            id="token-502",
        ),
        pytest.param(
            "token",
            httpx.Response(404, json={"error": "Not Found"}),
            ProviderRejected,
            "github rejected the login: the authorization code was refused",
            id="token-404",
        ),
        pytest.param(
            "token",
            httpx.Response(200, text="access_token=gho_x&token_type=bearer"),
            ProviderRejected,
            "github rejected the login: it gave an invalid answer",
            id="token-form-encoded",
        ),
        pytest.param(
            "token",
            httpx.Response(200, json={"token_type": "bearer"}),
            ProviderRejected,
            "github rejected the login: it gave an invalid answer",
            id="token-without-access-token",
        ),
        pytest.param(
            "token",
            httpx.Response(200, json={"access_token": "gho_x\r\nX-Injected: 1"}),
            ProviderRejected,
            "github rejected the login: it gave an invalid answer",
            id="token-access-token-with-newline",
        ),
        pytest.param(
            "token",
            httpx.Response(200, json={"access_token": "gho_ä"}),
            ProviderRejected,
            "github rejected the login: it gave an invalid answer",
            id="token-access-token-non-ascii",
        ),
        pytest.param(
            "user",
            httpx.ReadTimeout,
            ProviderUnavailable,
            "github is unavailable: it timed out; retry later",
            id="user-timeout",
        ),
        pytest.param(
            "user",
            httpx.Response(500),
            ProviderUnavailable,
            "github is unavailable: it answered HTTP 500; retry later",
            id="user-500",
        ),
        pytest.param(
            "user",
            httpx.Response(401, json={"message": "Bad credentials"}),
            ProviderRejected,
            "github rejected the login: the access token was refused",
            id="user-401",
        ),
        pytest.param(
            "user",
            httpx.Response(403, headers={"x-ratelimit-remaining": "0"}),
            ProviderUnavailable,
            "github is unavailable: it answered HTTP 403; retry later",
            id="user-rate-limited",
        ),
        pytest.param(
            "user",
            httpx.Response(200, text="<html>"),
            ProviderRejected,
            "github rejected the login: it gave an invalid answer",
            id="user-malformed-json",
        ),
        pytest.param(
            "user",
            httpx.Response(200, json=[]),
            ProviderRejected,
            "github rejected the login: it gave an invalid answer",
            id="user-not-an-object",
        ),
        pytest.param(
            "emails",
            httpx.ReadTimeout,
            ProviderUnavailable,
            "github is unavailable: it timed out; retry later",
            id="emails-timeout",
        ),
        pytest.param(
            "emails",
            httpx.Response(503),
            ProviderUnavailable,
            "github is unavailable: it answered HTTP 503; retry later",
            id="emails-503",
        ),
        pytest.param(
            "emails",
            httpx.Response(403, json={"message": "Resource not accessible by integration"}),
            ProviderRejected,
            "github rejected the login: the access token was refused",
            id="emails-403-scope-missing",
        ),
        pytest.param(
            "emails",
            httpx.Response(200, json={"email": "a@example.com"}),
            ProviderRejected,
            "github rejected the login: it gave an invalid answer",
            id="emails-not-an-array",
        ),
    ],
)
async def test_http_failures_are_translated(
    github: GitHubProvider,
    fake_github: FakeGitHub,
    endpoint: str,
    response: httpx.Response | type[Exception],
    error: type[Exception],
    message: str,
) -> None:
    fake_github.user["email"] = None  # so that the e-mails endpoint is asked too
    failing = route(getattr(fake_github, f"{endpoint}_route"))
    if isinstance(response, httpx.Response):
        failing.mock(return_value=response)
    else:
        failing.mock(side_effect=response)

    with pytest.raises(error) as caught:
        await login(github, fake_github)

    assert str(caught.value) == message
