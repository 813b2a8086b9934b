"""The page token codec of ListEntities: strict decoding, every field checked before use."""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dummy.domain import PageCursor
from dummy.rpc.page_token import (
    EARLIEST,
    FORMAT_VERSION,
    LATEST,
    TOKEN_LENGTH,
    InvalidPageToken,
    decode_page_token,
    encode_page_token,
)

OWNER = UUID("00000000-0000-4000-8000-000000000001")
OTHER_OWNER = UUID("00000000-0000-4000-8000-000000000002")
ENTITY = UUID("00000000-0000-4000-8000-0000000000e1")
NOW = datetime(2026, 12, 5, 9, 30, 15, 123456, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def raw_token(
    *,
    version: int = FORMAT_VERSION,
    owner: UUID = OWNER,
    micros: int = (NOW - EPOCH) // MICROSECOND,
    entity: UUID = ENTITY,
) -> bytes:
    return struct.pack(">B16sq16s", version, owner.bytes, micros, entity.bytes)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def old_format(owner: UUID, instant: str) -> str:
    """A token of the former format (base64 JSON), with any instant text."""
    payload = {"o": str(owner), "t": instant, "i": str(ENTITY)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


VALID = encode_page_token(OWNER, PageCursor(NOW, ENTITY))
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def with_stray_bit(token: str) -> str:
    """``token`` with the lowest of the last character's 2 unused bits set: the same bytes
    decode from it, but it is not what the encoder writes."""
    return token[:-1] + ALPHABET[ALPHABET.index(token[-1]) | 1]


ROUND_TRIPS = {
    "now": NOW,
    "earliest instant": EARLIEST,
    "latest instant": LATEST,
    "epoch": EPOCH,
    "before the epoch": datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    # the instant is kept, not the offset: the cursor compares instants
    "another offset": datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=5))),
}


@pytest.mark.parametrize("created_at", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_a_token_decodes_to_the_cursor_it_was_made_of(created_at: datetime) -> None:
    token = encode_page_token(OWNER, PageCursor(created_at, ENTITY))
    assert len(token) == TOKEN_LENGTH
    cursor = decode_page_token(OWNER, token)
    assert cursor == PageCursor(created_at, ENTITY)
    assert cursor.created_at.tzinfo is UTC


REFUSED = {
    "empty": ("", "55 characters"),
    "garbage": ("%%%", "55 characters"),
    "one character short": (VALID[:-1], "55 characters"),
    "one character more": (VALID + "A", "55 characters"),
    "padding appended": (VALID + "=", "55 characters"),
    "trailing bytes": (b64(raw_token() + b"\x00"), "55 characters"),
    "standard base64 alphabet": (VALID[:10] + "+" + VALID[11:], "55 characters"),
    "white space": (VALID[:-1] + " ", "55 characters"),
    "non-ASCII": (VALID[:-1] + "é", "55 characters"),
    "stray bits in the last character": (with_stray_bit(VALID), "canonical"),
    "unknown version": (b64(raw_token(version=2)), "version 2"),
    "version zero": (b64(raw_token(version=0)), "version 0"),
    "another owner": (b64(raw_token(owner=OTHER_OWNER)), "another owner"),
    "before year 1": (
        b64(raw_token(micros=(EARLIEST - EPOCH) // MICROSECOND - 1)),
        "out of range",
    ),
    "after year 9999": (b64(raw_token(micros=(LATEST - EPOCH) // MICROSECOND + 1)), "out of range"),
    "smallest 64-bit instant": (b64(raw_token(micros=-(2**63))), "out of range"),
    "largest 64-bit instant": (b64(raw_token(micros=2**63 - 1)), "out of range"),
    # the former format, as forged in issue 10: a year-1 instant with a positive offset
    # falls before year 1 in UTC, a year-9999 one with a negative offset after 9999
    "old format, year 1 +05:00": (old_format(OWNER, "0001-01-01T00:00:00+05:00"), "55 char"),
    "old format, year 9999 -05:00": (old_format(OWNER, "9999-12-31T23:00:00-05:00"), "55 char"),
}


@pytest.mark.parametrize(("token", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_a_token_that_was_not_issued_is_refused_with_its_reason(token: str, reason: str) -> None:
    with pytest.raises(InvalidPageToken) as refused:
        decode_page_token(OWNER, token)
    assert refused.value.field == "page_token"
    assert reason in refused.value.message
    assert "leave it empty to start from the first page" in refused.value.message


@pytest.mark.parametrize(
    "created_at",
    [datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))],
    ids=["year 1 +05:00 falls before year 1 UTC"],
)
def test_an_instant_outside_the_range_is_never_encoded(created_at: datetime) -> None:
    with pytest.raises(ValueError, match="outside what a page token holds"):
        encode_page_token(OWNER, PageCursor(created_at, ENTITY))


instants = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))


@given(owner=st.uuids(), instant=instants, entity=st.uuids())
def test_every_cursor_round_trips(owner: UUID, instant: datetime, entity: UUID) -> None:
    cursor = PageCursor(instant.replace(tzinfo=UTC), entity)
    assert decode_page_token(owner, encode_page_token(owner, cursor)) == cursor


@given(token=st.text(max_size=80) | st.binary(min_size=41, max_size=41).map(b64))
@example(token=VALID)
@example(token=with_stray_bit(VALID))
@example(token=b64(raw_token(micros=-(2**63))))
def test_any_text_is_a_cursor_that_encodes_back_to_it_or_refused(token: str) -> None:
    """No input escapes as another exception, and what is accepted is exactly what was issued."""
    try:
        cursor = decode_page_token(OWNER, token)
    except InvalidPageToken:
        return
    assert EARLIEST <= cursor.created_at <= LATEST
    assert encode_page_token(OWNER, cursor) == token
