"""The provider-independent login steps: state, PKCE, the callback's checks."""

from __future__ import annotations

import re

import httpx
import pytest

from auth.errors import ProviderRejected, ProviderUnavailable, StateMismatch
from auth.oauth.login import (
    check_state,
    code_challenge,
    complete_login,
    new_code_verifier,
    new_state,
    start_login,
)
from auth.oauth.memory import InMemoryOauthProvider
from auth.oauth.port import Provider
from servicekit.errors import InvalidArgument

# RFC 7636, section 4.1: unreserved characters, 43 to 128 of them.
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def test_state_and_verifier_are_random_and_well_formed() -> None:
    states = {new_state() for _ in range(100)}
    verifiers = {new_code_verifier() for _ in range(100)}

    assert len(states) == 100
    assert len(verifiers) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9]{32}", state) for state in states)
    assert all(PKCE_VERIFIER.fullmatch(verifier) for verifier in verifiers)


@pytest.mark.parametrize(
    ("verifier", "challenge"),
    [
        pytest.param(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            id="rfc7636-appendix-b",
        ),
    ],
)
def test_code_challenge_is_s256(verifier: str, challenge: str) -> None:
    assert code_challenge(verifier) == challenge


@pytest.mark.parametrize(
    ("state", "expected_state"),
    [
        pytest.param("abc123", "abc123", id="equal"),
        pytest.param("état-✓", "état-✓", id="equal-non-ascii"),
    ],
)
def test_matching_state_passes(state: str, expected_state: str) -> None:
    check_state(state, expected_state)


@pytest.mark.parametrize(
    ("state", "expected_state"),
    [
        pytest.param("abc123", "abc124", id="last-char"),
        pytest.param("abc12", "abc123", id="prefix"),
        pytest.param("abc123", "abc12", id="longer"),
        pytest.param("ABC123", "abc123", id="case"),
        pytest.param("état", "etat", id="non-ascii-vs-ascii"),
    ],
)
def test_other_state_is_state_mismatch(state: str, expected_state: str) -> None:
    with pytest.raises(StateMismatch) as caught:
        check_state(state, expected_state)

    assert caught.value.field == "state"
    assert expected_state not in caught.value.message


@pytest.mark.parametrize(
    ("state", "expected_state", "field"),
    [
        pytest.param("", "abc", "state", id="state-empty"),
        pytest.param("abc", "", "expected_state", id="expected-state-empty"),
        pytest.param("", "", "state", id="both-empty"),
    ],
)
def test_empty_state_is_invalid_argument(state: str, expected_state: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_state(state, expected_state)

    assert caught.value.field == field
    assert not isinstance(caught.value, StateMismatch)


def test_start_login_gives_url_with_its_state_and_the_challenge_of_its_verifier() -> None:
    start = start_login(InMemoryOauthProvider(Provider.GITHUB))

    params = httpx.URL(start.authorization_url).params
    assert params["state"] == start.state
    assert params["code_challenge"] == code_challenge(start.code_verifier)
    assert start.code_verifier not in repr(start)


async def test_complete_login_returns_the_identity() -> None:
    provider = InMemoryOauthProvider(Provider.GOOGLE)
    start = start_login(provider)
    code = provider.authorize(start.authorization_url)

    identity = await complete_login(
        provider,
        code=code,
        state=start.state,
        expected_state=start.state,
        code_verifier=start.code_verifier,
    )

    assert identity == provider.identity


@pytest.mark.parametrize(
    ("code", "state", "expected_state", "error", "field"),
    [
        pytest.param("c", "s1", "s2", StateMismatch, "state", id="state-mismatch"),
        pytest.param("", "s", "s", InvalidArgument, "code", id="code-empty"),
        pytest.param("c", "", "s", InvalidArgument, "state", id="state-empty"),
        pytest.param("c", "s", "", InvalidArgument, "expected_state", id="expected-state-empty"),
    ],
)
async def test_callback_checks_come_before_the_provider_is_called(
    code: str, state: str, expected_state: str, error: type[InvalidArgument], field: str
) -> None:
    provider = InMemoryOauthProvider()

    with pytest.raises(error) as caught:
        await complete_login(
            provider, code=code, state=state, expected_state=expected_state, code_verifier="v"
        )

    assert caught.value.field == field
    assert provider.exchanges == []


async def test_in_memory_provider_keeps_pkce_honest_and_codes_single_use() -> None:
    provider = InMemoryOauthProvider()
    start = start_login(provider)
    code = provider.authorize(start.authorization_url)

    with pytest.raises(ProviderRejected):
        await provider.exchange(code, new_code_verifier())
    code = provider.authorize(start.authorization_url)
    await provider.exchange(code, start.code_verifier)
    with pytest.raises(ProviderRejected):
        await provider.exchange(code, start.code_verifier)


async def test_in_memory_provider_raises_the_failure_it_is_given() -> None:
    provider = InMemoryOauthProvider(failure=ProviderUnavailable("google", "it timed out"))

    with pytest.raises(ProviderUnavailable):
        await provider.exchange("code", "verifier")
