"""Unit tests of CreateSession, ValidateSession and DeleteSession on the in-memory fake.

Each case also says how many writes it may make: a wrong secret must write nothing.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from auth.errors import InvalidSessionToken, StorageUnavailable
from auth.repository import InMemorySessionRepository
from auth.rpc.create_session import create_session
from auth.rpc.delete_session import delete_session
from auth.rpc.validate_session import validate_session
from auth.sessions import SESSION_LIFETIME
from auth.v1 import auth_pb2 as pb
from fixtures.clock import FrozenClock
from servicekit.errors import InvalidArgument, ServiceError
from servicekit.timestamps import from_timestamp

USER = "00000000-0000-4000-8000-000000000001"


@pytest.fixture
def sessions() -> InMemorySessionRepository:
    return InMemorySessionRepository()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


async def login(sessions: InMemorySessionRepository, clock: FrozenClock) -> str:
    response = await create_session(pb.CreateSessionRequest(user_id=USER), sessions, clock)
    return response.token


@pytest.mark.parametrize(
    ("user_id", "error"),
    [(USER, None), ("", InvalidArgument), ("12", InvalidArgument)],
    ids=["happy path", "user_id missing", "user_id malformed"],
)
async def test_create_session(
    sessions: InMemorySessionRepository,
    clock: FrozenClock,
    user_id: str,
    error: type[ServiceError] | None,
) -> None:
    request = pb.CreateSessionRequest(user_id=user_id)
    if error is not None:
        with pytest.raises(error, match="user_id"):
            await create_session(request, sessions, clock)
        assert sessions.writes == 0
        return
    response = await create_session(request, sessions, clock)
    session_id, secret = response.token.split(".")
    assert response.session.id == session_id
    assert response.session.user_id == USER
    assert from_timestamp(response.session.expire_time) == clock.now + SESSION_LIFETIME
    stored = sessions.sessions[session_id]
    assert secret.encode() not in stored.secret_hash  # only the digest is kept
    assert stored.user_id == UUID(USER)


# (time passed since login, refreshed?, writes made by the validation)
VALIDATIONS = {
    "fresh": (timedelta(0), False, 0),
    "just before half of the lifetime": (SESSION_LIFETIME / 2 - timedelta(seconds=1), False, 0),
    "almost expired": (SESSION_LIFETIME - timedelta(seconds=1), True, 1),
}


@pytest.mark.parametrize(
    ("elapsed", "refreshed", "writes"), VALIDATIONS.values(), ids=VALIDATIONS.keys()
)
async def test_validate_a_live_session(
    sessions: InMemorySessionRepository,
    clock: FrozenClock,
    elapsed: timedelta,
    refreshed: bool,
    writes: int,
) -> None:
    token = await login(sessions, clock)
    login_time = clock.now
    clock.advance(elapsed)
    before = sessions.writes
    response = await validate_session(pb.ValidateSessionRequest(token=token), sessions, clock)
    assert response.refreshed is refreshed
    assert sessions.writes - before == writes
    expected_expiry = (clock.now if refreshed else login_time) + SESSION_LIFETIME
    assert from_timestamp(response.session.expire_time) == expected_expiry
    assert sessions.sessions[token.split(".")[0]].expire_time == expected_expiry


async def test_an_expired_session_is_deleted(
    sessions: InMemorySessionRepository, clock: FrozenClock
) -> None:
    token = await login(sessions, clock)
    clock.advance(SESSION_LIFETIME)
    with pytest.raises(InvalidSessionToken):
        await validate_session(pb.ValidateSessionRequest(token=token), sessions, clock)
    assert sessions.sessions == {}


def with_wrong_secret(token: str) -> str:
    session_id, secret = token.split(".")
    return f"{session_id}.{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"


@pytest.mark.parametrize(
    "elapsed",
    [timedelta(0), SESSION_LIFETIME - timedelta(seconds=1), SESSION_LIFETIME + timedelta(days=1)],
    ids=["fresh", "would be refreshed", "would be deleted as expired"],
)
async def test_a_wrong_secret_is_refused_and_writes_nothing(
    sessions: InMemorySessionRepository, clock: FrozenClock, elapsed: timedelta
) -> None:
    token = await login(sessions, clock)
    kept = dict(sessions.sessions)
    clock.advance(elapsed)
    before = sessions.writes
    wrong = with_wrong_secret(token)
    with pytest.raises(InvalidSessionToken):
        await validate_session(pb.ValidateSessionRequest(token=wrong), sessions, clock)
    with pytest.raises(InvalidSessionToken):
        await delete_session(pb.DeleteSessionRequest(token=wrong), sessions, clock)
    assert sessions.writes == before
    assert sessions.sessions == kept


MALFORMED = {
    "empty": ("", InvalidArgument),
    "no dot": ("a" * 68, InvalidSessionToken),
    "unknown session": ("a" * 24 + "." + "b" * 43, InvalidSessionToken),
    "oversized": ("a" * 10_000, InvalidSessionToken),
    "bad characters": ("!" * 24 + "." + "b" * 43, InvalidSessionToken),
}


@pytest.mark.parametrize(("token", "error"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_or_unknown_tokens(
    sessions: InMemorySessionRepository,
    clock: FrozenClock,
    token: str,
    error: type[ServiceError],
) -> None:
    await login(sessions, clock)
    before = sessions.writes
    with pytest.raises(error):
        await validate_session(pb.ValidateSessionRequest(token=token), sessions, clock)
    with pytest.raises(error):
        await delete_session(pb.DeleteSessionRequest(token=token), sessions, clock)
    assert sessions.writes == before


async def test_logout_deletes_and_the_token_stops_working(
    sessions: InMemorySessionRepository, clock: FrozenClock
) -> None:
    token = await login(sessions, clock)
    other = await login(sessions, clock)
    await delete_session(pb.DeleteSessionRequest(token=token), sessions, clock)
    with pytest.raises(InvalidSessionToken):
        await validate_session(pb.ValidateSessionRequest(token=token), sessions, clock)
    with pytest.raises(InvalidSessionToken):
        await delete_session(pb.DeleteSessionRequest(token=token), sessions, clock)
    # the user's other session is untouched
    await validate_session(pb.ValidateSessionRequest(token=other), sessions, clock)


async def test_storage_failure_is_unavailable(
    sessions: InMemorySessionRepository, clock: FrozenClock
) -> None:
    token = await login(sessions, clock)
    sessions.unavailable = True
    with pytest.raises(StorageUnavailable):
        await create_session(pb.CreateSessionRequest(user_id=USER), sessions, clock)
    with pytest.raises(StorageUnavailable):
        await validate_session(pb.ValidateSessionRequest(token=token), sessions, clock)
    with pytest.raises(StorageUnavailable):
        await delete_session(pb.DeleteSessionRequest(token=token), sessions, clock)
