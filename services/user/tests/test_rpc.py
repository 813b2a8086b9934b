"""Unit tests of every user RPC on the in-memory repository (no network, no database)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest

from fixtures.failures import Failure, expect_failure
from servicekit.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    StorageUnavailable,
)
from user.errors import EmailAlreadyUsed, UserNotFound
from user.repository import InMemoryUserRepository
from user.rpc.create_user import create_user
from user.rpc.get_user import get_user
from user.rpc.get_user_by_email import get_user_by_email
from user.v1 import user_pb2 as pb

MISSING = UUID("00000000-0000-4000-8000-00000000dead")
STORED_EMAIL = "Ann.Lee@example.com"


@pytest.fixture
def repository() -> InMemoryUserRepository:
    return InMemoryUserRepository()


async def stored(repository: InMemoryUserRepository, email: str = STORED_EMAIL) -> pb.User:
    request = pb.CreateUserRequest(email=email, name="Ann", avatar_url="https://example.com/a.png")
    return (await create_user(request, repository)).user


def local_part_of(length: int) -> str:
    """An address of exactly ``length`` characters."""
    return "a" * (length - len("@example.com")) + "@example.com"


# ---------------------------------------------------------------- CreateUser

# (request, expected stored email, expected stored name, expected stored avatar_url)
CREATE_ACCEPTED = {
    "happy path": (
        pb.CreateUserRequest(email="ann@example.com", name="Ann", avatar_url="https://x.io/a.png"),
        "ann@example.com",
        "Ann",
        "https://x.io/a.png",
    ),
    "email only": (pb.CreateUserRequest(email="ann@example.com"), "ann@example.com", "", ""),
    "email trimmed, domain lower-cased, local part kept": (
        pb.CreateUserRequest(email="  Ann.Lee@Mail.Example.COM\t"),
        "Ann.Lee@mail.example.com",
        "",
        "",
    ),
    "name trimmed": (
        pb.CreateUserRequest(email="a@b.co", name="  Ann Lee "),
        "a@b.co",
        "Ann Lee",
        "",
    ),
    "email of 254 characters": (
        pb.CreateUserRequest(email=local_part_of(254)),
        local_part_of(254),
        "",
        "",
    ),
    "name of 200 characters": (
        pb.CreateUserRequest(email="a@b.co", name="n" * 200),
        "a@b.co",
        "n" * 200,
        "",
    ),
    "http avatar_url": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="http://example.com/a.png"),
        "a@b.co",
        "",
        "http://example.com/a.png",
    ),
    "avatar_url of 2048 characters": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="https://x.io/" + "p" * 2035),
        "a@b.co",
        "",
        "https://x.io/" + "p" * 2035,
    ),
    "non-ASCII address": (
        pb.CreateUserRequest(email="Jörg@BÜCHER.de"),
        "Jörg@bücher.de",
        "",
        "",
    ),
}


@pytest.mark.parametrize(
    ("request_", "email", "name", "avatar_url"),
    CREATE_ACCEPTED.values(),
    ids=CREATE_ACCEPTED.keys(),
)
async def test_create_user(
    repository: InMemoryUserRepository,
    request_: pb.CreateUserRequest,
    email: str,
    name: str,
    avatar_url: str,
) -> None:
    user = (await create_user(request_, repository)).user
    assert (user.email, user.name, user.avatar_url) == (email, name, avatar_url)
    assert UUID(user.id)
    assert user.HasField("create_time")


CREATE_REJECTED = {
    "email missing": (pb.CreateUserRequest(name="Ann"), "email"),
    "email blank": (pb.CreateUserRequest(email="   "), "email"),
    "email without @": (pb.CreateUserRequest(email="ann.example.com"), "email"),
    "email with two @": (pb.CreateUserRequest(email="ann@lee@example.com"), "email"),
    "email without local part": (pb.CreateUserRequest(email="@example.com"), "email"),
    "email without domain": (pb.CreateUserRequest(email="ann@"), "email"),
    "email domain without dot": (pb.CreateUserRequest(email="ann@localhost"), "email"),
    "email domain with empty label": (pb.CreateUserRequest(email="ann@example..com"), "email"),
    "email domain ending in dot": (pb.CreateUserRequest(email="ann@example."), "email"),
    "email with inner space": (pb.CreateUserRequest(email="ann lee@example.com"), "email"),
    "email with tab": (pb.CreateUserRequest(email="ann\t@example.com"), "email"),
    "email with NUL": (pb.CreateUserRequest(email="ann\x00@example.com"), "email"),
    "email of 255 characters": (pb.CreateUserRequest(email=local_part_of(255)), "email"),
    "email with a right-to-left override": (
        pb.CreateUserRequest(email="ann\u202e@example.com"),
        "email",
    ),
    "email with a zero-width space": (pb.CreateUserRequest(email="an\u200bn@example.com"), "email"),
    "name with ESC": (pb.CreateUserRequest(email="a@b.co", name="\x1b[31mAnn"), "name"),
    "name of a Hangul filler": (pb.CreateUserRequest(email="a@b.co", name="\u3164"), "name"),
    "avatar_url with a BOM": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="https://x.io/\ufeff.png"),
        "avatar_url",
    ),
    "name of 201 characters": (pb.CreateUserRequest(email="a@b.co", name="n" * 201), "name"),
    "name with NUL": (pb.CreateUserRequest(email="a@b.co", name="An\x00n"), "name"),
    "name with newline": (pb.CreateUserRequest(email="a@b.co", name="Ann\nLee"), "name"),
    "avatar_url relative": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="/a.png"),
        "avatar_url",
    ),
    "avatar_url scheme-relative": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="//x.io/a.png"),
        "avatar_url",
    ),
    "avatar_url ftp": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="ftp://x.io/a.png"),
        "avatar_url",
    ),
    "avatar_url javascript": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="javascript:alert(1)"),
        "avatar_url",
    ),
    "avatar_url without host": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="https:///a.png"),
        "avatar_url",
    ),
    "avatar_url with bad port": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="https://x.io:99999/a.png"),
        "avatar_url",
    ),
    "avatar_url with unclosed IPv6 host": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="https://[::1/a.png"),
        "avatar_url",
    ),
    "avatar_url with inner space": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="https://x.io/a b.png"),
        "avatar_url",
    ),
    "avatar_url of 2049 characters": (
        pb.CreateUserRequest(email="a@b.co", avatar_url="https://x.io/" + "p" * 2036),
        "avatar_url",
    ),
}


@pytest.mark.parametrize(
    ("request_", "field"), CREATE_REJECTED.values(), ids=CREATE_REJECTED.keys()
)
async def test_create_user_rejects(
    repository: InMemoryUserRepository, request_: pb.CreateUserRequest, field: str
) -> None:
    await expect_failure(create_user(request_, repository), Failure(InvalidArgument, field))


@pytest.mark.parametrize(
    "again",
    [STORED_EMAIL, STORED_EMAIL.upper(), STORED_EMAIL.lower(), f"  {STORED_EMAIL.swapcase()} "],
    ids=["same", "upper case", "lower case", "padded, swapped case"],
)
async def test_create_user_with_a_used_email_is_already_exists(
    repository: InMemoryUserRepository, again: str
) -> None:
    first = await stored(repository)
    with pytest.raises(EmailAlreadyUsed) as raised:
        await create_user(pb.CreateUserRequest(email=again, name="Other"), repository)
    assert isinstance(raised.value, AlreadyExists)
    assert "email" in raised.value.message
    # the first user is untouched
    assert (await get_user(pb.GetUserRequest(id=first.id), repository)).user == first


async def test_create_user_gives_each_user_its_own_id(repository: InMemoryUserRepository) -> None:
    ann = await stored(repository, "ann@example.com")
    bob = await stored(repository, "bob@example.com")
    assert ann.id != bob.id


# ---------------------------------------------------------------- GetUser

GET_CASES = {
    "happy path": ("{id}", None),
    "id missing": ("", Failure(InvalidArgument, "id")),
    "id not a UUID": ("123", Failure(InvalidArgument, "id")),
    "id a truncated UUID": ("00000000-0000-4000-8000", Failure(InvalidArgument, "id")),
    "not found": (str(MISSING), Failure(UserNotFound)),
}


@pytest.mark.parametrize(("user_id", "failure"), GET_CASES.values(), ids=GET_CASES.keys())
async def test_get_user(
    repository: InMemoryUserRepository, user_id: str, failure: Failure | None
) -> None:
    user = await stored(repository)
    request = pb.GetUserRequest(id=user_id.format(id=user.id))
    if failure is not None:
        await expect_failure(get_user(request, repository), failure)
        return
    assert (await get_user(request, repository)).user == user


# ---------------------------------------------------------------- GetUserByEmail

GET_BY_EMAIL_CASES = {
    "same address": (STORED_EMAIL, None),
    "domain in another case": ("Ann.Lee@EXAMPLE.com", None),
    "local part in another case": ("ann.lee@example.com", None),
    "all upper case, padded": (f"  {STORED_EMAIL.upper()} ", None),
    "email missing": ("", Failure(InvalidArgument, "email")),
    "email blank": ("  ", Failure(InvalidArgument, "email")),
    "email without @": ("ann.lee", Failure(InvalidArgument, "email")),
    "email with two @": ("ann@lee@example.com", Failure(InvalidArgument, "email")),
    "email domain without dot": ("ann.lee@example", Failure(InvalidArgument, "email")),
    "email with inner space": ("ann lee@example.com", Failure(InvalidArgument, "email")),
    "email of 255 characters": (local_part_of(255), Failure(InvalidArgument, "email")),
    "not found": ("bob@example.com", Failure(UserNotFound)),
}


@pytest.mark.parametrize(
    ("email", "failure"), GET_BY_EMAIL_CASES.values(), ids=GET_BY_EMAIL_CASES.keys()
)
async def test_get_user_by_email(
    repository: InMemoryUserRepository, email: str, failure: Failure | None
) -> None:
    user = await stored(repository)
    request = pb.GetUserByEmailRequest(email=email)
    if failure is not None:
        await expect_failure(get_user_by_email(request, repository), failure)
        return
    assert (await get_user_by_email(request, repository)).user == user


async def test_not_found_by_email_does_not_echo_the_address(
    repository: InMemoryUserRepository,
) -> None:
    with pytest.raises(NotFound) as raised:
        await get_user_by_email(pb.GetUserByEmailRequest(email="bob@example.com"), repository)
    assert "bob" not in raised.value.message


# ---------------------------------------------------------------- storage failure

STORAGE_CALLS: dict[str, Callable[[InMemoryUserRepository], Awaitable[Any]]] = {
    "create": lambda r: create_user(pb.CreateUserRequest(email="a@b.co"), r),
    "get": lambda r: get_user(pb.GetUserRequest(id=str(MISSING)), r),
    "get by email": lambda r: get_user_by_email(pb.GetUserByEmailRequest(email="a@b.co"), r),
}


@pytest.mark.parametrize("call", STORAGE_CALLS.values(), ids=STORAGE_CALLS.keys())
async def test_storage_failure_is_unavailable(
    repository: InMemoryUserRepository,
    call: Callable[[InMemoryUserRepository], Awaitable[Any]],
) -> None:
    repository.unavailable = True
    await expect_failure(call(repository), Failure(StorageUnavailable))
