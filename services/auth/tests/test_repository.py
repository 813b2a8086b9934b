"""Tests of every repository query, on real PostgreSQL and on the in-memory fakes alike.

Each test of the sessions and of the OAuth account links runs twice: against the
Postgres adapter on a pool of a freshly migrated, empty ``auth`` database (from the
harness) and against the in-memory fake, so the fakes every unit test relies on are
held to what the database really does. Concurrent linking is tested on PostgreSQL
only: the fake has no concurrency to get wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import asyncpg
import pytest

from auth.oauth.port import Provider
from auth.repository import (
    InMemoryOauthAccountRepository,
    InMemorySessionRepository,
    OauthAccountRepository,
    PostgresOauthAccountRepository,
    PostgresSessionRepository,
    SessionRepository,
)
from auth.sessions import StoredSession, hash_secret, new_session

USER = UUID("00000000-0000-4000-8000-000000000001")
OTHER_USER = UUID("00000000-0000-4000-8000-000000000002")
UNKNOWN_SESSION = "a" * 24
NOW = datetime(2025, 6, 1, 12, 30, 15, 123456, tzinfo=UTC)

BACKENDS = [pytest.param("postgres", marks=pytest.mark.integration), "in-memory"]


@pytest.fixture
def auth_pool(service_pools: dict[str, asyncpg.Pool], clean_service_state: None) -> asyncpg.Pool:
    """A pool on the empty, migrated ``auth`` database."""
    return service_pools["auth"]


@pytest.fixture(params=BACKENDS)
def sessions(request: pytest.FixtureRequest) -> SessionRepository:
    if request.param == "postgres":
        pool: asyncpg.Pool = request.getfixturevalue("auth_pool")
        return PostgresSessionRepository(pool)
    return InMemorySessionRepository()


@pytest.fixture(params=BACKENDS)
def accounts(request: pytest.FixtureRequest) -> OauthAccountRepository:
    if request.param == "postgres":
        pool: asyncpg.Pool = request.getfixturevalue("auth_pool")
        return PostgresOauthAccountRepository(pool)
    return InMemoryOauthAccountRepository()


def stored_session(
    secret_hash: bytes | None = None, user_id: UUID = USER, expire_time: datetime | None = None
) -> StoredSession:
    minted = new_session(NOW)
    return StoredSession(
        id=minted.id,
        user_id=user_id,
        secret_hash=minted.secret_hash if secret_hash is None else secret_hash,
        expire_time=minted.expire_time if expire_time is None else expire_time,
    )


# ---------------------------------------------------------------- sessions


@pytest.mark.parametrize(
    "secret_hash",
    [
        hash_secret("a secret"),
        bytes(range(32)),
        b"\x00" * 32,
        b"\xff" * 31 + b"\x00",
    ],
    ids=["a real digest", "every low byte", "all zero", "trailing zero byte"],
)
async def test_create_then_get_session(sessions: SessionRepository, secret_hash: bytes) -> None:
    session = stored_session(secret_hash)
    await sessions.create(session)
    found = await sessions.get(session.id)
    assert found == session
    assert found is not None
    # the digest comes back as the very same bytes, not a memoryview or a hex string
    assert type(found.secret_hash) is bytes
    assert found.secret_hash == secret_hash
    assert found.expire_time.utcoffset() is not None


async def test_expire_time_in_another_zone_is_the_same_instant(
    sessions: SessionRepository,
) -> None:
    paris_summer = timezone(timedelta(hours=2))
    expire_time = datetime(2025, 6, 8, 14, 30, 15, 123456, tzinfo=paris_summer)
    session = stored_session(expire_time=expire_time)
    await sessions.create(session)
    found = await sessions.get(session.id)
    assert found is not None
    assert found.expire_time == datetime(2025, 6, 8, 12, 30, 15, 123456, tzinfo=UTC)


async def test_get_unknown_session_is_none(sessions: SessionRepository) -> None:
    await sessions.create(stored_session())
    assert await sessions.get(UNKNOWN_SESSION) is None


async def test_sessions_are_kept_apart(sessions: SessionRepository) -> None:
    mine = stored_session(user_id=USER)
    theirs = stored_session(user_id=OTHER_USER)
    await sessions.create(mine)
    await sessions.create(theirs)
    assert await sessions.get(mine.id) == mine
    assert await sessions.get(theirs.id) == theirs


async def test_set_expire_time_moves_only_the_expiry(sessions: SessionRepository) -> None:
    session = stored_session()
    other = stored_session()
    await sessions.create(session)
    await sessions.create(other)
    later = session.expire_time + timedelta(days=3, microseconds=7)
    await sessions.set_expire_time(session.id, later)
    found = await sessions.get(session.id)
    assert found == StoredSession(session.id, session.user_id, session.secret_hash, later)
    assert await sessions.get(other.id) == other


async def test_set_expire_time_of_an_unknown_session_creates_nothing(
    sessions: SessionRepository,
) -> None:
    await sessions.set_expire_time(UNKNOWN_SESSION, NOW)
    assert await sessions.get(UNKNOWN_SESSION) is None


async def test_delete_session(sessions: SessionRepository) -> None:
    session = stored_session()
    other = stored_session()
    await sessions.create(session)
    await sessions.create(other)
    await sessions.delete(session.id)
    assert await sessions.get(session.id) is None
    assert await sessions.get(other.id) == other
    # deleting again, or an id never stored, is harmless
    await sessions.delete(session.id)
    await sessions.delete(UNKNOWN_SESSION)
    assert await sessions.get(other.id) == other


# ---------------------------------------------------------------- OAuth account links


async def test_link_then_get(accounts: OauthAccountRepository) -> None:
    linked = await accounts.link(Provider.GOOGLE, "google-123", USER)
    assert (linked.provider, linked.provider_user_id, linked.user_id) == (
        Provider.GOOGLE,
        "google-123",
        USER,
    )
    assert type(linked.provider) is Provider
    assert linked.created_at.utcoffset() is not None
    assert await accounts.get(Provider.GOOGLE, "google-123") == linked


async def test_link_again_to_the_same_user_returns_the_same_link(
    accounts: OauthAccountRepository,
) -> None:
    first = await accounts.link(Provider.GITHUB, "42", USER)
    again = await accounts.link(Provider.GITHUB, "42", USER)
    assert again == first  # created_at included: nothing was written again


async def test_link_to_another_user_returns_the_existing_link(
    accounts: OauthAccountRepository,
) -> None:
    first = await accounts.link(Provider.GITHUB, "42", USER)
    attempt = await accounts.link(Provider.GITHUB, "42", OTHER_USER)
    # the caller sees user_id != OTHER_USER and answers ALREADY_EXISTS
    assert attempt == first
    assert attempt.user_id == USER
    assert await accounts.get(Provider.GITHUB, "42") == first


async def test_one_id_at_two_providers_are_two_accounts(
    accounts: OauthAccountRepository,
) -> None:
    at_google = await accounts.link(Provider.GOOGLE, "42", USER)
    at_github = await accounts.link(Provider.GITHUB, "42", OTHER_USER)
    assert (at_google.provider, at_google.user_id) == (Provider.GOOGLE, USER)
    assert (at_github.provider, at_github.user_id) == (Provider.GITHUB, OTHER_USER)
    assert await accounts.get(Provider.GOOGLE, "42") == at_google
    assert await accounts.get(Provider.GITHUB, "42") == at_github


async def test_one_user_may_link_several_accounts(accounts: OauthAccountRepository) -> None:
    google = await accounts.link(Provider.GOOGLE, "g-1", USER)
    github = await accounts.link(Provider.GITHUB, "h-1", USER)
    assert await accounts.get(Provider.GOOGLE, "g-1") == google
    assert await accounts.get(Provider.GITHUB, "h-1") == github


async def test_get_unknown_account_is_none(accounts: OauthAccountRepository) -> None:
    await accounts.link(Provider.GOOGLE, "42", USER)
    assert await accounts.get(Provider.GOOGLE, "43") is None
    assert await accounts.get(Provider.GITHUB, "42") is None
    assert await accounts.get(Provider.GOOGLE, "4") is None  # a prefix is not a match


# ---------------------------------------------------------------- PostgreSQL only

RACERS = 8


@pytest.fixture
async def racing_pool(clean_databases: Mapping[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """A pool with a connection ready for every racer, so that their inserts really overlap."""
    pool = await asyncpg.create_pool(clean_databases["auth"], min_size=RACERS, max_size=RACERS)
    yield pool
    await pool.close()


@pytest.mark.integration
async def test_concurrent_links_of_one_account_agree_on_one_winner(
    racing_pool: asyncpg.Pool,
) -> None:
    accounts = PostgresOauthAccountRepository(racing_pool)
    users = [UUID(int=0x4000_8000_0000_0000_0000 + n) for n in range(RACERS)]
    outcomes = await asyncio.gather(
        *(accounts.link(Provider.GOOGLE, "contested", user) for user in users)
    )
    winner = outcomes[0]
    assert winner.user_id in users
    assert all(outcome == winner for outcome in outcomes), outcomes
    assert await accounts.get(Provider.GOOGLE, "contested") == winner
    assert await racing_pool.fetchval("SELECT count(*) FROM oauth_accounts") == 1
