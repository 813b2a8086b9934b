"""Session tokens and the session policy (auth.sessions)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from auth.errors import InvalidSessionToken
from auth.sessions import (
    SESSION_LIFETIME,
    Decision,
    Expired,
    Refresh,
    SessionToken,
    StoredSession,
    Valid,
    decide,
    hash_secret,
    new_session,
    parse_token,
)
from servicekit.errors import InvalidArgument

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
ID = "abcdefghijklmnopqrstuvwx"
SECRET = "A" * 20 + "b" * 10 + "0123456789_-Z"
assert len(SECRET) == 43
TOKEN = f"{ID}.{SECRET}"


def stored(*, expires_in: timedelta, secret: str = SECRET) -> StoredSession:
    return StoredSession(
        id=ID,
        user_id=UUID("00000000-0000-4000-8000-000000000001"),
        secret_hash=hash_secret(secret),
        expire_time=NOW + expires_in,
    )


# --- minting -----------------------------------------------------------------------------


def test_new_session_token_is_id_dot_secret_and_only_the_hash_is_kept() -> None:
    session = new_session(NOW)

    session_id, secret = parse_token(session.token)

    assert session_id == session.id
    assert re.fullmatch(r"[a-z2-7]{24}", session.id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)
    assert session.secret_hash == hashlib.sha256(secret.encode()).digest()
    assert secret.encode() not in session.secret_hash
    assert session.expire_time == NOW + timedelta(days=7)


def test_new_sessions_are_random() -> None:
    tokens = {new_session(NOW).token for _ in range(50)}
    ids = {token.split(".")[0] for token in tokens}

    assert len(tokens) == 50
    assert len(ids) == 50


def test_new_session_never_shows_its_secret_in_repr() -> None:
    session = new_session(NOW)
    _, secret = parse_token(session.token)

    assert secret not in repr(session)
    assert secret not in repr(parse_token(session.token))


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_session(datetime(2030, 1, 1))


# --- parsing -----------------------------------------------------------------------------


def test_parse_valid_token() -> None:
    assert parse_token(TOKEN) == SessionToken(ID, SECRET)


def test_parse_empty_token_is_invalid_argument_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_token("")

    assert caught.value.field == "token"
    assert not isinstance(caught.value, InvalidSessionToken)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(ID + SECRET + "x", id="no-dot"),
        pytest.param(f"{ID}.{SECRET[:-2]}.x", id="extra-dot-in-secret"),
        pytest.param(f"{ID[:-1]}..{SECRET}", id="two-dots-in-a-row"),
        pytest.param(f".{ID}{SECRET}", id="leading-dot"),
        pytest.param(f"{ID}{SECRET}.", id="trailing-dot"),
        pytest.param(f"{ID}.{SECRET}"[:-1], id="secret-too-short"),
        pytest.param(f"{ID}.{SECRET}x", id="secret-too-long"),
        pytest.param(f"{ID[:-1]}.{SECRET}x", id="id-too-short"),
        pytest.param(f"{ID}x.{SECRET[:-1]}", id="id-too-long"),
        pytest.param(f"{ID.upper()}.{SECRET}", id="id-upper-case"),
        pytest.param(f"{ID[:-1]}1.{SECRET}", id="id-digit-outside-base32"),
        pytest.param(f"{ID}.{SECRET[:-1]}=", id="secret-padding"),
        pytest.param(f"{ID}.{SECRET[:-1]}+", id="secret-plus"),
        pytest.param(f"{ID}.{SECRET[:-1]}/", id="secret-slash"),
        pytest.param(f"{ID}.{SECRET[:-1]} ", id="secret-space"),
        pytest.param(f"{ID}.{SECRET[:-1]}\n", id="secret-newline"),
        pytest.param(f"{ID}.{SECRET[:-1]}é", id="secret-non-ascii"),
        pytest.param(f"{ID[:-1]}ä.{SECRET}", id="id-non-ascii"),
        pytest.param(f" {ID}.{SECRET[1:]}", id="leading-space"),
        pytest.param("x" * 68, id="right-length-no-dot"),
        pytest.param(" ", id="blank"),
        pytest.param(".", id="only-dot"),
        pytest.param(TOKEN * 2, id="doubled"),
        pytest.param(TOKEN + "x" * 10_000_000, id="oversized"),
    ],
)
def test_parse_malformed_token_is_invalid_session_token(token: str) -> None:
    with pytest.raises(InvalidSessionToken) as caught:
        parse_token(token)

    assert caught.value.message == "the session token is invalid or expired"


# --- policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        pytest.param(SESSION_LIFETIME, Valid(), id="just-created"),
        pytest.param(timedelta(days=4), Valid(), id="first-half"),
        pytest.param(
            timedelta(days=3, hours=12, microseconds=1), Valid(), id="just-before-half-boundary"
        ),
        pytest.param(
            timedelta(days=3, hours=12),
            Refresh(NOW + SESSION_LIFETIME),
            id="exactly-half-left-refreshes",
        ),
        pytest.param(timedelta(days=1), Refresh(NOW + SESSION_LIFETIME), id="second-half"),
        pytest.param(
            timedelta(microseconds=1), Refresh(NOW + SESSION_LIFETIME), id="almost-expired"
        ),
        pytest.param(timedelta(0), Expired(), id="exactly-at-expiry"),
        pytest.param(-timedelta(microseconds=1), Expired(), id="just-expired"),
        pytest.param(-timedelta(days=30), Expired(), id="long-expired"),
    ],
)
def test_decide(expires_in: timedelta, expected: Decision) -> None:
    assert decide(stored(expires_in=expires_in), SECRET, NOW) == expected


@pytest.mark.parametrize(
    "expires_in",
    [
        pytest.param(timedelta(days=6), id="would-be-valid"),
        pytest.param(timedelta(days=1), id="would-refresh"),
        pytest.param(-timedelta(days=1), id="would-delete-as-expired"),
    ],
)
@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(SECRET[:-1] + "Y", id="last-char-differs"),
        pytest.param("B" + SECRET[1:], id="first-char-differs"),
        pytest.param("", id="empty"),
        pytest.param(SECRET + "x", id="longer"),
    ],
)
def test_wrong_secret_raises_before_any_decision_to_write(
    expires_in: timedelta, secret: str
) -> None:
    with pytest.raises(InvalidSessionToken) as caught:
        decide(stored(expires_in=expires_in), secret, NOW)

    assert caught.value.message == "the session token is invalid or expired"


def test_refresh_slides_the_expiry_from_now_not_from_the_old_expiry() -> None:
    later = NOW + timedelta(days=5)

    decision = decide(stored(expires_in=timedelta(days=7)), SECRET, later)

    assert decision == Refresh(later + timedelta(days=7))


def test_decide_accepts_any_timezone_for_now() -> None:
    tokyo_now = NOW.astimezone(timezone(timedelta(hours=9)))

    assert decide(stored(expires_in=timedelta(days=1)), SECRET, tokyo_now) == Refresh(
        NOW + SESSION_LIFETIME
    )


def test_a_minted_session_validates_with_its_own_token() -> None:
    session = new_session(NOW)
    token = parse_token(session.token)
    kept = StoredSession(
        id=session.id,
        user_id=UUID("00000000-0000-4000-8000-000000000002"),
        secret_hash=session.secret_hash,
        expire_time=session.expire_time,
    )

    assert decide(kept, token.secret, NOW + timedelta(days=1)) == Valid()
    with pytest.raises(InvalidSessionToken):
        decide(kept, new_session(NOW).token.split(".")[1], NOW)
