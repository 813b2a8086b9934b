"""The Google adapter against FakeGoogle: PKCE, the token exchange, and the id_token checks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from auth.errors import ProviderRejected, ProviderUnavailable
from auth.oauth.google import GoogleProvider
from auth.oauth.port import OauthIdentity
from fixtures.oauth import GOOGLE_CLIENT_ID, GOOGLE_REDIRECT_URI, OMIT, FakeGoogle

from .support import STATE, VERIFIER, route

if TYPE_CHECKING:
    from collections.abc import Callable

    from fixtures.clock import FrozenClock


async def login(google: GoogleProvider, fake: FakeGoogle, **claims: Any) -> OauthIdentity:
    """The whole flow: authorization URL, consent, code exchange."""
    code = fake.authorize(google.authorization_url(STATE, VERIFIER), **claims)
    return await google.exchange(code, VERIFIER)


async def login_with_token(google: GoogleProvider, fake: FakeGoogle, id_token: str) -> None:
    code = fake.authorize(google.authorization_url(STATE, VERIFIER), id_token=id_token)
    await google.exchange(code, VERIFIER)


# --- the happy path ----------------------------------------------------------------------


async def test_token_request_carries_code_verifier_client_and_redirect(
    google: GoogleProvider, fake_google: FakeGoogle
) -> None:
    code = fake_google.authorize(google.authorization_url(STATE, VERIFIER))
    await google.exchange(code, VERIFIER)

    request = route(fake_google.token_route).calls.last.request
    form = httpx.QueryParams(request.content.decode())
    assert dict(form) == {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": GOOGLE_REDIRECT_URI,
        "client_id": GOOGLE_CLIENT_ID,
        "client_secret": fake_google.client_secret,
        "code_verifier": VERIFIER,
    }


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"iss": "accounts.google.com"}, id="issuer-without-scheme"),
        pytest.param({"aud": [GOOGLE_CLIENT_ID]}, id="audience-list-of-one"),
        pytest.param(
            {"aud": [GOOGLE_CLIENT_ID, "other"], "azp": GOOGLE_CLIENT_ID},
            id="several-audiences-authorized-party-us",
        ),
        pytest.param({"exp_in": -30}, id="expired-within-leeway"),
        pytest.param({"iat_in": 30}, id="issued-in-future-within-leeway"),
        pytest.param({"name": OMIT, "picture": OMIT}, id="no-name-no-picture"),
    ],
)
async def test_tolerated_id_tokens(
    google: GoogleProvider, fake_google: FakeGoogle, clock: FrozenClock, claims: dict[str, Any]
) -> None:
    now = int(clock().timestamp())
    if "exp_in" in claims:
        claims["exp"] = now + claims.pop("exp_in")
    if "iat_in" in claims:
        claims["iat"] = now + claims.pop("iat_in")

    identity = await login(google, fake_google, **claims)

    assert identity.email == "ada@example.com"


# --- id_token rejections -----------------------------------------------------------------


def _at(seconds: int) -> Callable[[FrozenClock], int]:
    return lambda clock: int(clock().timestamp()) + seconds


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        pytest.param({"aud": "someone-else"}, "aud", id="wrong-audience"),
        pytest.param({"aud": ["someone", "else"]}, "aud", id="audience-list-without-us"),
        pytest.param(
            {"aud": [GOOGLE_CLIENT_ID, "other"], "azp": "other"},
            "azp",
            id="several-audiences-authorized-party-not-us",
        ),
        pytest.param({"aud": OMIT}, "aud", id="no-audience"),
        pytest.param({"iss": "https://accounts.evil.test"}, "iss", id="wrong-issuer"),
        pytest.param({"iss": OMIT}, "iss", id="no-issuer"),
        pytest.param({"exp": _at(-61)}, "exp", id="expired-beyond-leeway"),
        pytest.param({"exp": _at(-3600)}, "exp", id="expired-an-hour-ago"),
        pytest.param({"exp": OMIT}, "exp", id="no-expiry"),
        pytest.param({"exp": "tomorrow"}, "exp", id="expiry-not-a-number"),
        pytest.param({"iat": _at(3600)}, "iat", id="issued-in-the-future"),
        pytest.param({"iat": OMIT}, "iat", id="no-issued-at"),
        pytest.param({"sub": OMIT}, "sub", id="no-subject"),
        pytest.param({"email_verified": False}, "email_verified", id="email-unverified"),
        pytest.param({"email_verified": "true"}, "email_verified", id="email-verified-a-string"),
        pytest.param({"email_verified": OMIT}, "email_verified", id="email-verified-missing"),
        pytest.param({"email": OMIT}, "email", id="no-email"),
        pytest.param({"email": ""}, "email", id="empty-email"),
    ],
)
async def test_id_token_with_bad_claims_is_rejected(
    google: GoogleProvider,
    fake_google: FakeGoogle,
    clock: FrozenClock,
    claims: dict[str, Any],
    detail: str,
) -> None:
    resolved = {name: value(clock) if callable(value) else value for name, value in claims.items()}

    with pytest.raises(ProviderRejected) as caught:
        await login(google, fake_google, **resolved)

    assert caught.value.detail.startswith(detail)
    assert caught.value.message in (
        "google rejected the login: the identity token did not verify",
        "google rejected the login: the account has no verified e-mail address",
    )


def _unsigned(fake: FakeGoogle) -> str:
    return f"{_encode({'alg': 'none', 'typ': 'JWT'})}.{_encode(fake.id_token_claims())}."


def _encode(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _hs256_with_public_key(fake: FakeGoogle) -> str:
    # The classic confusion attack: HMAC keyed with the (public) RSA key. joserfc refuses
    # to build such a key, so the token is put together by hand.
    public_pem = fake.signing_key.as_pem(private=False)
    signing_input = (
        f"{_encode({'alg': 'HS256', 'kid': fake.signing_key.kid})}."
        f"{_encode(fake.id_token_claims())}"
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _alg_not_a_string(fake: FakeGoogle) -> str:
    _, payload, signature = fake.mint_id_token().split(".")
    return f"{_encode({'alg': ['RS256'], 'kid': fake.signing_key.kid})}.{payload}.{signature}"


def _tampered(fake: FakeGoogle) -> str:
    header, _, signature = fake.mint_id_token().split(".")
    return f"{header}.{_encode(fake.id_token_claims(email='mallory@example.com'))}.{signature}"


@pytest.mark.parametrize(
    ("make_token", "detail"),
    [
        pytest.param(FakeGoogle.forge_id_token, "bad_signature", id="signed-by-another-key"),
        pytest.param(_tampered, "bad_signature", id="payload-tampered"),
        pytest.param(_unsigned, "unsupported_algorithm", id="alg-none"),
        pytest.param(_hs256_with_public_key, "unsupported_algorithm", id="alg-hs256"),
        pytest.param(lambda fake: "not-a-jwt", "decode_error", id="not-a-jwt"),
        pytest.param(lambda fake: "a.b.c", "decode_error", id="garbage-segments"),
        pytest.param(_alg_not_a_string, "invalid_header_value", id="alg-not-a-string"),
    ],
)
async def test_id_token_that_does_not_verify_is_rejected(
    google: GoogleProvider,
    fake_google: FakeGoogle,
    make_token: Callable[[FakeGoogle], str],
    detail: str,
) -> None:
    id_token = make_token(fake_google)

    with pytest.raises(ProviderRejected) as caught:
        await login_with_token(google, fake_google, id_token)

    assert caught.value.message == "google rejected the login: the identity token did not verify"
    assert caught.value.detail.startswith(detail)
    assert id_token not in caught.value.message


# --- JWKS: cache, rotation ---------------------------------------------------------------


async def test_keys_are_fetched_once_and_cached(
    google: GoogleProvider, fake_google: FakeGoogle
) -> None:
    await login(google, fake_google)
    await login(google, fake_google)

    assert route(fake_google.jwks_route).call_count == 1


async def test_concurrent_logins_share_one_key_fetch(
    google: GoogleProvider, fake_google: FakeGoogle
) -> None:
    async def slow_jwks(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # let the other logins reach the cache meanwhile
        return fake_google.handle_jwks(request)

    route(fake_google.jwks_route).mock(side_effect=slow_jwks)

    identities = await asyncio.gather(*(login(google, fake_google) for _ in range(5)))

    assert {identity.email for identity in identities} == {"ada@example.com"}
    assert route(fake_google.jwks_route).call_count == 1


async def test_keys_are_fetched_again_when_the_cache_expires(
    google: GoogleProvider, fake_google: FakeGoogle, clock: FrozenClock
) -> None:
    await login(google, fake_google)
    clock.advance(timedelta(hours=1, seconds=1))
    await login(google, fake_google)

    assert route(fake_google.jwks_route).call_count == 2


async def test_unknown_key_id_refetches_the_keys_once_then_verifies(
    google: GoogleProvider, fake_google: FakeGoogle
) -> None:
    await login(google, fake_google)
    fake_google.rotate_key()

    identity = await login(google, fake_google)

    assert identity.provider_user_id == "110169484474386276334"
    assert route(fake_google.jwks_route).call_count == 2


async def test_key_id_unknown_even_after_refetch_is_rejected(
    google: GoogleProvider, fake_google: FakeGoogle
) -> None:
    await login(google, fake_google)
    id_token = fake_google.mint_id_token(kid="never-published")

    with pytest.raises(ProviderRejected) as caught:
        await login_with_token(google, fake_google, id_token)

    assert caught.value.detail == "signed with an unknown key id"
    assert route(fake_google.jwks_route).call_count == 2


# --- HTTP failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        pytest.param(
            httpx.Response(400, json={"error": "invalid_grant"}),
            ProviderRejected,
            "google rejected the login: the authorization code was refused",
            id="400-invalid-grant",
        ),
        pytest.param(
            httpx.Response(401, json={"error": "invalid_client"}),
            ProviderRejected,
            "google rejected the login: the authorization code was refused",
            id="401-invalid-client",
        ),
        pytest.param(
            httpx.Response(302, headers={"location": "https://elsewhere.test"}),
            ProviderRejected,
            "google rejected the login: the authorization code was refused",
            id="302-redirect",
        ),
        pytest.param(
            httpx.Response(200, text="<html>oops</html>"),
            ProviderRejected,
            "google rejected the login: it gave an invalid answer",
            id="200-malformed-json",
        ),
        pytest.param(
            httpx.Response(200, content=b"\xff\xfe{"),
            ProviderRejected,
            "google rejected the login: it gave an invalid answer",
            id="200-undecodable-bytes",
        ),
        pytest.param(
            httpx.Response(200, json=["id_token"]),
            ProviderRejected,
            "google rejected the login: it gave an invalid answer",
            id="200-json-array",
        ),
        pytest.param(
            httpx.Response(200, json={"access_token": "x"}),
            ProviderRejected,
            "google rejected the login: it gave an invalid answer",
            id="200-without-id-token",
        ),
        pytest.param(
            httpx.Response(200, json={"id_token": 42}),
            ProviderRejected,
            "google rejected the login: it gave an invalid answer",
            id="200-id-token-not-a-string",
        ),
        pytest.param(
            httpx.ConnectTimeout,
            ProviderUnavailable,
            "google is unavailable: it timed out; retry later",
            id="connect-timeout",
        ),
        pytest.param(
            httpx.ReadTimeout,
            ProviderUnavailable,
            "google is unavailable: it timed out; retry later",
            id="read-timeout",
        ),
        pytest.param(
            httpx.ConnectError,
            ProviderUnavailable,
            "google is unavailable: it could not be reached; retry later",
            id="connection-refused",
        ),
        pytest.param(
            httpx.RemoteProtocolError,
            ProviderUnavailable,
            "google is unavailable: it could not be reached; retry later",
            id="connection-dropped",
        ),
        pytest.param(
            httpx.Response(500),
            ProviderUnavailable,
            "google is unavailable: it answered HTTP 500; retry later",
            id="500",
        ),
        pytest.param(
            httpx.Response(503, text="Service Unavailable"),
            ProviderUnavailable,
            "google is unavailable: it answered HTTP 503; retry later",
            id="503",
        ),
        pytest.param(
            httpx.Response(429, json={"error": "rate_limit_exceeded"}),
            ProviderUnavailable,
            "google is unavailable: it answered HTTP 429; retry later",
            id="429-rate-limited",
        ),
    ],
)
async def test_token_endpoint_failures_are_translated(
    google: GoogleProvider,
    fake_google: FakeGoogle,
    response: httpx.Response | type[Exception],
    error: type[Exception],
    message: str,
) -> None:
    if isinstance(response, httpx.Response):
        route(fake_google.token_route).mock(return_value=response)
    else:
        route(fake_google.token_route).mock(side_effect=response)

    with pytest.raises(error) as caught:
        await login(google, fake_google)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("response", "error"),
    [
        pytest.param(httpx.ReadTimeout, ProviderUnavailable, id="timeout"),
        pytest.param(httpx.ConnectError, ProviderUnavailable, id="connection-refused"),
        pytest.param(httpx.Response(502), ProviderUnavailable, id="502"),
        pytest.param(httpx.Response(404), ProviderRejected, id="404"),
        pytest.param(httpx.Response(200, text="{"), ProviderRejected, id="malformed-json"),
        pytest.param(httpx.Response(200, json={"keys": "x"}), ProviderRejected, id="keys-not-list"),
        pytest.param(httpx.Response(200, json={"keys": []}), ProviderRejected, id="no-keys"),
        pytest.param(
            httpx.Response(200, json={"keys": [{"kty": "RSA", "kid": "k"}]}),
            ProviderRejected,
            id="broken-key",
        ),
        pytest.param(
            httpx.Response(200, json={"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}),
            ProviderRejected,
            id="key-not-base64",
        ),
    ],
)
async def test_jwks_failures_are_translated(
    google: GoogleProvider,
    fake_google: FakeGoogle,
    response: httpx.Response | type[Exception],
    error: type[Exception],
) -> None:
    if isinstance(response, httpx.Response):
        route(fake_google.jwks_route).mock(return_value=response)
    else:
        route(fake_google.jwks_route).mock(side_effect=response)

    with pytest.raises(error):
        await login(google, fake_google)


async def test_a_failed_key_fetch_is_retried_on_the_next_login(
    google: GoogleProvider, fake_google: FakeGoogle
) -> None:
    jwks = route(fake_google.jwks_route)
    jwks.mock(side_effect=httpx.ConnectError)
    with pytest.raises(ProviderUnavailable):
        await login(google, fake_google)

    jwks.mock(side_effect=fake_google.handle_jwks)
    assert (await login(google, fake_google)).email == "ada@example.com"


# --- the PKCE and code checks, end to end ------------------------------------------------


async def test_code_with_another_verifier_is_refused(
    google: GoogleProvider, fake_google: FakeGoogle
) -> None:
    code = fake_google.authorize(google.authorization_url(STATE, VERIFIER))

    with pytest.raises(ProviderRejected, match="the authorization code was refused"):
        await google.exchange(code, VERIFIER[:-1] + "x")


async def test_code_is_single_use(google: GoogleProvider, fake_google: FakeGoogle) -> None:
    code = fake_google.authorize(google.authorization_url(STATE, VERIFIER))
    await google.exchange(code, VERIFIER)

    with pytest.raises(ProviderRejected) as caught:
        await google.exchange(code, VERIFIER)

    assert code not in caught.value.message
    assert "invalid_grant" in caught.value.detail


async def test_wrong_client_secret_is_refused(
    fake_google: FakeGoogle, http: httpx.AsyncClient, clock: FrozenClock
) -> None:
    google = GoogleProvider(fake_google.settings(client_secret="not-it"), http, clock=clock)

    with pytest.raises(ProviderRejected) as caught:
        await login(google, fake_google)

    assert "not-it" not in caught.value.message
    assert "invalid_client" in caught.value.detail
