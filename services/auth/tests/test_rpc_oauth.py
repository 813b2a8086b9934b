"""Unit tests of StartOauthLogin and HandleOauthCallback on in-memory providers and accounts."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest

from auth.errors import (
    ProviderNotConfigured,
    ProviderRejected,
    ProviderUnavailable,
    StateMismatch,
    StorageUnavailable,
)
from auth.oauth import InMemoryOauthProvider, Provider, Providers, code_challenge
from auth.repository import InMemoryOauthAccountRepository
from auth.rpc.handle_oauth_callback import handle_oauth_callback
from auth.rpc.start_oauth_login import start_oauth_login
from auth.v1 import auth_pb2 as pb
from servicekit.errors import InvalidArgument, ServiceError

USER = UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture
def google() -> InMemoryOauthProvider:
    return InMemoryOauthProvider(Provider.GOOGLE)


@pytest.fixture
def providers(google: InMemoryOauthProvider) -> Providers:
    """Google configured, GitHub not."""
    return Providers({Provider.GOOGLE: google})


@pytest.fixture
def accounts() -> InMemoryOauthAccountRepository:
    return InMemoryOauthAccountRepository()


async def test_start_gives_a_url_carrying_state_and_the_verifiers_challenge(
    providers: Providers,
) -> None:
    started = await start_oauth_login(
        pb.StartOauthLoginRequest(provider=pb.PROVIDER_GOOGLE), providers
    )
    query = parse_qs(urlsplit(started.authorization_url).query)
    assert query["state"] == [started.state]
    assert query["code_challenge"] == [code_challenge(started.code_verifier)]
    again = await start_oauth_login(
        pb.StartOauthLoginRequest(provider=pb.PROVIDER_GOOGLE), providers
    )
    assert (again.state, again.code_verifier) != (started.state, started.code_verifier)


@pytest.mark.parametrize(
    ("provider", "error"),
    [(pb.PROVIDER_UNSPECIFIED, InvalidArgument), (pb.PROVIDER_GITHUB, ProviderNotConfigured)],
    ids=["provider unspecified", "provider not configured"],
)
async def test_start_refuses(
    providers: Providers, provider: pb.Provider.ValueType, error: type[ServiceError]
) -> None:
    with pytest.raises(error) as raised:
        await start_oauth_login(pb.StartOauthLoginRequest(provider=provider), providers)
    if error is ProviderNotConfigured:
        assert "AUTH_GITHUB_CLIENT_ID" in raised.value.message


async def started_and_consented(
    providers: Providers, google: InMemoryOauthProvider
) -> pb.HandleOauthCallbackRequest:
    started = await start_oauth_login(
        pb.StartOauthLoginRequest(provider=pb.PROVIDER_GOOGLE), providers
    )
    code = google.authorize(started.authorization_url)
    return pb.HandleOauthCallbackRequest(
        provider=pb.PROVIDER_GOOGLE,
        code=code,
        state=started.state,
        expected_state=started.state,
        code_verifier=started.code_verifier,
    )


async def test_callback_returns_the_identity_and_no_user_when_not_linked(
    providers: Providers, google: InMemoryOauthProvider, accounts: InMemoryOauthAccountRepository
) -> None:
    request = await started_and_consented(providers, google)
    response = await handle_oauth_callback(request, providers, accounts)
    assert response.identity.provider_user_id == google.identity.provider_user_id
    assert response.identity.email == google.identity.email
    assert response.identity.provider == pb.PROVIDER_GOOGLE
    assert response.user_id == ""


async def test_callback_returns_the_linked_user(
    providers: Providers, google: InMemoryOauthProvider, accounts: InMemoryOauthAccountRepository
) -> None:
    await accounts.link(Provider.GOOGLE, google.identity.provider_user_id, USER)
    request = await started_and_consented(providers, google)
    response = await handle_oauth_callback(request, providers, accounts)
    assert response.user_id == str(USER)


# Each case breaks one field of a good callback request.
BROKEN_CALLBACKS: dict[str, tuple[dict[str, object], type[ServiceError], str | None]] = {
    "provider unspecified": ({"provider": pb.PROVIDER_UNSPECIFIED}, InvalidArgument, "provider"),
    "provider not configured": ({"provider": pb.PROVIDER_GITHUB}, ProviderNotConfigured, None),
    "code empty": ({"code": ""}, InvalidArgument, "code"),
    "state empty": ({"state": ""}, InvalidArgument, "state"),
    "expected_state empty": ({"expected_state": ""}, InvalidArgument, "expected_state"),
    "state does not match": ({"state": "forged"}, StateMismatch, "state"),
    "code_verifier empty": ({"code_verifier": ""}, InvalidArgument, "code_verifier"),
    "wrong code_verifier": ({"code_verifier": "x" * 64}, ProviderRejected, None),
    "unknown code": ({"code": "made-up"}, ProviderRejected, None),
}


@pytest.mark.parametrize(
    ("change", "error", "field"), BROKEN_CALLBACKS.values(), ids=BROKEN_CALLBACKS.keys()
)
async def test_callback_refuses(
    providers: Providers,
    google: InMemoryOauthProvider,
    accounts: InMemoryOauthAccountRepository,
    change: dict[str, object],
    error: type[ServiceError],
    field: str | None,
) -> None:
    request = await started_and_consented(providers, google)
    for name, value in change.items():
        setattr(request, name, value)
    with pytest.raises(error) as raised:
        await handle_oauth_callback(request, providers, accounts)
    if field is not None:
        assert raised.value.message.startswith(f"{field}: ")


async def test_a_state_mismatch_never_spends_the_code(
    providers: Providers, google: InMemoryOauthProvider, accounts: InMemoryOauthAccountRepository
) -> None:
    request = await started_and_consented(providers, google)
    request.state = "forged"
    with pytest.raises(StateMismatch):
        await handle_oauth_callback(request, providers, accounts)
    assert google.exchanges == []


async def test_a_code_redeems_once(
    providers: Providers, google: InMemoryOauthProvider, accounts: InMemoryOauthAccountRepository
) -> None:
    request = await started_and_consented(providers, google)
    await handle_oauth_callback(request, providers, accounts)
    with pytest.raises(ProviderRejected):
        await handle_oauth_callback(request, providers, accounts)


@pytest.mark.parametrize(
    "failure",
    [ProviderUnavailable("google", "timed out"), ProviderRejected("google", "refused")],
    ids=["provider unavailable", "provider rejected"],
)
async def test_provider_failures_pass_through(
    providers: Providers,
    google: InMemoryOauthProvider,
    accounts: InMemoryOauthAccountRepository,
    failure: ServiceError,
) -> None:
    request = await started_and_consented(providers, google)
    google.failure = failure
    with pytest.raises(type(failure)):
        await handle_oauth_callback(request, providers, accounts)


async def test_storage_failure_is_unavailable(
    providers: Providers, google: InMemoryOauthProvider, accounts: InMemoryOauthAccountRepository
) -> None:
    request = await started_and_consented(providers, google)
    accounts.unavailable = True
    with pytest.raises(StorageUnavailable):
        await handle_oauth_callback(request, providers, accounts)
