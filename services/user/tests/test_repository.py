"""Tests of every repository query, on real PostgreSQL and on the in-memory fake alike.

Each test runs twice: against PostgresUserRepository on the ``user_pool`` fixture
(an asyncpg pool on a freshly migrated, empty ``user`` database, provided by the
harness) and against InMemoryUserRepository, so the fake every unit test relies on
is held to what the database really does.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import pytest

from fixtures.factories import NewUserFactory
from user.domain import NewUser
from user.errors import EmailAlreadyUsed
from user.repository import InMemoryUserRepository, PostgresUserRepository, UserRepository

MISSING = UUID("00000000-0000-4000-8000-00000000dead")


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.integration), "in-memory"])
def repository(request: pytest.FixtureRequest) -> UserRepository:
    if request.param == "postgres":
        pool: asyncpg.Pool = request.getfixturevalue("user_pool")
        return PostgresUserRepository(pool)
    return InMemoryUserRepository()


def new_user(email: str = "Ann.Lee@example.com", name: str = "Ann") -> NewUser:
    # Repositories receive normalized addresses; these tests pass them as such.
    return NewUserFactory.build(email=email, name=name, avatar_url="https://example.com/ann.png")


async def test_create_then_get(repository: UserRepository) -> None:
    created = await repository.create(new_user())
    assert (created.email, created.name, created.avatar_url) == (
        "Ann.Lee@example.com",
        "Ann",
        "https://example.com/ann.png",
    )
    assert created.created_at.tzinfo is not None
    assert await repository.get(created.id) == created


async def test_create_stores_empty_name_and_avatar_url(repository: UserRepository) -> None:
    created = await repository.create(NewUser(email="a@b.co", name="", avatar_url=""))
    assert await repository.get(created.id) == created
    assert (created.name, created.avatar_url) == ("", "")


async def test_create_gives_each_user_its_own_id(repository: UserRepository) -> None:
    ann = await repository.create(new_user("ann@example.com"))
    bob = await repository.create(new_user("bob@example.com"))
    assert ann.id != bob.id
    assert await repository.get(ann.id) == ann
    assert await repository.get(bob.id) == bob


async def test_get_unknown_is_none(repository: UserRepository) -> None:
    await repository.create(new_user())
    assert await repository.get(MISSING) is None


@pytest.mark.parametrize(
    "lookup",
    ["Ann.Lee@example.com", "ann.lee@example.com", "ANN.LEE@EXAMPLE.COM", "aNN.lEE@example.com"],
    ids=["as stored", "lower case", "upper case", "swapped case"],
)
async def test_get_by_email_ignores_case(repository: UserRepository, lookup: str) -> None:
    created = await repository.create(new_user("Ann.Lee@example.com"))
    assert await repository.get_by_email(lookup) == created


async def test_get_by_email_unknown_is_none(repository: UserRepository) -> None:
    await repository.create(new_user("ann@example.com"))
    assert await repository.get_by_email("bob@example.com") is None
    # a prefix or a pattern is not a match
    assert await repository.get_by_email("ann@example.co") is None
    assert await repository.get_by_email("%@example.com") is None


@pytest.mark.parametrize(
    "again",
    ["Ann.Lee@example.com", "ann.lee@example.com", "ANN.LEE@EXAMPLE.COM"],
    ids=["same", "lower case", "upper case"],
)
async def test_duplicate_email_in_any_case_is_email_already_used(
    repository: UserRepository, again: str
) -> None:
    first = await repository.create(new_user("Ann.Lee@example.com", name="first"))
    with pytest.raises(EmailAlreadyUsed):
        await repository.create(new_user(again, name="second"))
    # the first user is untouched and still the one found by e-mail
    assert await repository.get(first.id) == first
    assert await repository.get_by_email(again) == first


async def test_concurrent_creates_of_one_email_store_one_user(repository: UserRepository) -> None:
    attempts = [new_user(email, name=email) for email in ("x@example.com", "X@example.com") * 4]
    outcomes = await asyncio.gather(
        *(repository.create(attempt) for attempt in attempts), return_exceptions=True
    )
    created = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(created) == 1, outcomes
    assert all(isinstance(o, EmailAlreadyUsed) for o in refused), refused
    assert await repository.get_by_email("x@example.com") == created[0]


async def test_non_ascii_letters_are_compared_case_insensitively(
    repository: UserRepository,
) -> None:
    created = await repository.create(new_user("Jörg@bücher.de"))
    found = await repository.get_by_email("JÖRG@bücher.de")
    assert found == created, (
        "lower() in PostgreSQL did not fold 'Ö': the database's LC_CTYPE is probably C; "
        "create it with a UTF-8 locale (see migrations/0001_create_users.sql)"
    )
    with pytest.raises(EmailAlreadyUsed):
        await repository.create(new_user("jörg@bücher.de"))
