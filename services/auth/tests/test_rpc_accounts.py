"""Unit tests of LinkOauthAccount and GetOauthAccount on the in-memory fake."""

from __future__ import annotations

import pytest

from auth.errors import AccountLinkedToAnotherUser, OauthAccountNotFound, StorageUnavailable
from auth.repository import InMemoryOauthAccountRepository
from auth.rpc.get_oauth_account import get_oauth_account
from auth.rpc.link_oauth_account import link_oauth_account
from auth.v1 import auth_pb2 as pb
from servicekit.errors import InvalidArgument

USER = "00000000-0000-4000-8000-000000000001"
OTHER_USER = "00000000-0000-4000-8000-000000000002"
GOOGLE, GITHUB = pb.PROVIDER_GOOGLE, pb.PROVIDER_GITHUB


@pytest.fixture
def accounts() -> InMemoryOauthAccountRepository:
    return InMemoryOauthAccountRepository()


INVALID_LINKS = {
    "provider unspecified": (pb.PROVIDER_UNSPECIFIED, "42", USER, "provider"),
    "provider unknown number": (7, "42", USER, "provider"),
    "provider_user_id empty": (GOOGLE, "", USER, "provider_user_id"),
    "provider_user_id too long": (GOOGLE, "9" * 256, USER, "provider_user_id"),
    "user_id missing": (GOOGLE, "42", "", "user_id"),
    "user_id malformed": (GOOGLE, "42", "me", "user_id"),
}


@pytest.mark.parametrize(
    ("provider", "provider_user_id", "user_id", "field"),
    INVALID_LINKS.values(),
    ids=INVALID_LINKS.keys(),
)
async def test_link_rejects_invalid_fields(
    accounts: InMemoryOauthAccountRepository,
    provider: int,
    provider_user_id: str,
    user_id: str,
    field: str,
) -> None:
    request = pb.LinkOauthAccountRequest(
        provider=provider,  # type: ignore[arg-type]
        provider_user_id=provider_user_id,
        user_id=user_id,
    )
    with pytest.raises(InvalidArgument) as raised:
        await link_oauth_account(request, accounts)
    assert raised.value.field == field
    assert accounts.accounts == {}


async def test_link_then_get(accounts: InMemoryOauthAccountRepository) -> None:
    linked = await link_oauth_account(
        pb.LinkOauthAccountRequest(provider=GITHUB, provider_user_id="42", user_id=USER), accounts
    )
    fetched = await get_oauth_account(
        pb.GetOauthAccountRequest(provider=GITHUB, provider_user_id="42"), accounts
    )
    assert fetched.account == linked.account
    assert (linked.account.provider, linked.account.user_id) == (GITHUB, USER)


async def test_linking_again_to_the_same_user_is_a_no_op(
    accounts: InMemoryOauthAccountRepository,
) -> None:
    request = pb.LinkOauthAccountRequest(provider=GOOGLE, provider_user_id="sub-1", user_id=USER)
    first = await link_oauth_account(request, accounts)
    again = await link_oauth_account(request, accounts)
    assert again.account == first.account


async def test_linking_to_another_user_is_already_exists(
    accounts: InMemoryOauthAccountRepository,
) -> None:
    await link_oauth_account(
        pb.LinkOauthAccountRequest(provider=GOOGLE, provider_user_id="sub-1", user_id=USER),
        accounts,
    )
    with pytest.raises(AccountLinkedToAnotherUser) as raised:
        await link_oauth_account(
            pb.LinkOauthAccountRequest(
                provider=GOOGLE, provider_user_id="sub-1", user_id=OTHER_USER
            ),
            accounts,
        )
    assert USER not in raised.value.message  # the other user is not named
    # the same id at another provider is another account
    await link_oauth_account(
        pb.LinkOauthAccountRequest(provider=GITHUB, provider_user_id="sub-1", user_id=OTHER_USER),
        accounts,
    )


@pytest.mark.parametrize(
    ("provider", "provider_user_id", "error"),
    [
        (GOOGLE, "nobody", OauthAccountNotFound),
        (pb.PROVIDER_UNSPECIFIED, "42", InvalidArgument),
        (GOOGLE, "", InvalidArgument),
    ],
    ids=["not linked", "provider unspecified", "provider_user_id empty"],
)
async def test_get_failures(
    accounts: InMemoryOauthAccountRepository,
    provider: int,
    provider_user_id: str,
    error: type[Exception],
) -> None:
    request = pb.GetOauthAccountRequest(provider=provider, provider_user_id=provider_user_id)  # type: ignore[arg-type]
    with pytest.raises(error):
        await get_oauth_account(request, accounts)


async def test_storage_failure_is_unavailable(accounts: InMemoryOauthAccountRepository) -> None:
    accounts.unavailable = True
    with pytest.raises(StorageUnavailable):
        await link_oauth_account(
            pb.LinkOauthAccountRequest(provider=GOOGLE, provider_user_id="1", user_id=USER),
            accounts,
        )
    with pytest.raises(StorageUnavailable):
        await get_oauth_account(
            pb.GetOauthAccountRequest(provider=GOOGLE, provider_user_id="1"), accounts
        )
