"""The page token of ListEntities: where the next page starts, for one owner.

A token is the unpadded URL-safe base64 of 41 bytes::

    version (1 byte, 1) | owner id (16) | created_at (8, signed big-endian
    microseconds since 1970-01-01 UTC) | entity id (16)

Tokens come back from callers, so decoding is strict and checks everything before
the cursor is used: the exact length and alphabet, the canonical encoding (no
trailing bytes, no padding, no stray bits in the last character), the version, the
owner, and that the instant lies between 0001-01-01 and 9999-12-31 UTC, which both
Python and PostgreSQL represent. Anything else is INVALID_ARGUMENT naming
``page_token``.

Tokens are not signed. A token only says where to resume in the caller's own list
(it is bound to the owner, and the owner comes from the authenticated session), so
a forged one can do no more than skip to another place in that list, which the
caller could reach by paging anyway. Signing would add a secret that every replica
must share and that must be rotated, for no protection; validating is what keeps a
forged value away from the database.
"""

from __future__ import annotations

import base64
import re
import struct
from datetime import UTC, datetime, timedelta
from uuid import UUID

from dummy.domain import PageCursor
from servicekit.errors import InvalidArgument

FORMAT_VERSION = 1
_LAYOUT = struct.Struct(">B16sq16s")  # version, owner, microseconds since the epoch, id
TOKEN_LENGTH = 55  # characters of unpadded base64 for the layout's 41 bytes
_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9_-]*")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_EARLIEST_MICROS = (EARLIEST - _EPOCH) // _MICROSECOND
_LATEST_MICROS = (LATEST - _EPOCH) // _MICROSECOND


class InvalidPageToken(InvalidArgument):
    def __init__(self, reason: str) -> None:
        super().__init__(
            "page_token",
            f"is not a token ListEntities returned for this owner ({reason}); "
            "leave it empty to start from the first page",
        )


def encode_page_token(owner_id: UUID, cursor: PageCursor) -> str:
    """The token of ``cursor`` for ``owner_id``; ``cursor.created_at`` must be timezone-aware
    and within EARLIEST..LATEST (every stored timestamp is)."""
    micros = (cursor.created_at - _EPOCH) // _MICROSECOND
    if not _EARLIEST_MICROS <= micros <= _LATEST_MICROS:
        raise ValueError(f"created_at {cursor.created_at} is outside what a page token holds")
    raw = _LAYOUT.pack(FORMAT_VERSION, owner_id.bytes, micros, cursor.id.bytes)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page_token(owner_id: UUID, token: str) -> PageCursor:
    """The cursor in ``token``, checked in full; InvalidPageToken for anything else."""
    if len(token) != TOKEN_LENGTH or not _TOKEN_CHARACTERS.fullmatch(token):
        raise InvalidPageToken(f"a token is {TOKEN_LENGTH} characters of URL-safe base64")
    raw = base64.urlsafe_b64decode(token + "=")  # cannot fail: length and alphabet checked
    # The last character carries 2 bits beyond the 41 bytes: a canonical token has them 0.
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != token:
        raise InvalidPageToken("not canonically encoded")
    version, owner_bytes, micros, id_bytes = _LAYOUT.unpack(raw)
    if version != FORMAT_VERSION:
        raise InvalidPageToken(f"unknown format version {version}")
    if UUID(bytes=owner_bytes) != owner_id:
        raise InvalidPageToken("issued for another owner")
    if not _EARLIEST_MICROS <= micros <= _LATEST_MICROS:
        raise InvalidPageToken("its position is out of range")
    return PageCursor(_EPOCH + micros * _MICROSECOND, UUID(bytes=id_bytes))
