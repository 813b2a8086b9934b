"""ListEntities: keyset pagination in (created_at, id) order.

The page token is opaque to callers: URL-safe base64 of the last entity's
(created_at, id) and the owner it was issued for, so a token of another owner,
or a made-up one, is INVALID_ARGUMENT rather than a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from dummy.domain import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageCursor
from dummy.repository import EntityRepository
from dummy.rpc.convert import entity_message
from dummy.v1 import dummy_pb2
from servicekit.errors import InvalidArgument
from servicekit.validation import parse_uuid


def encode_page_token(owner_id: UUID, cursor: PageCursor) -> str:
    payload = {"o": str(owner_id), "t": cursor.created_at.isoformat(), "i": str(cursor.id)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def decode_page_token(owner_id: UUID, token: str) -> PageCursor:
    invalid = InvalidArgument("page_token", "is not a token returned by ListEntities")
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeError):
        raise invalid from None
    # Whatever was decoded came from the caller: check every field's type before use.
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(key), str) for key in ("o", "t", "i")
    ):
        raise invalid
    try:
        token_owner = UUID(payload["o"])
        cursor = PageCursor(datetime.fromisoformat(payload["t"]), UUID(payload["i"]))
    except ValueError:
        raise invalid from None
    if token_owner != owner_id or cursor.created_at.tzinfo is None:
        raise invalid
    return cursor


def page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgument(
            "page_size", f"must be between 0 and {MAX_PAGE_SIZE}, got {requested}"
        )
    return requested or DEFAULT_PAGE_SIZE


async def list_entities(
    request: dummy_pb2.ListEntitiesRequest, repository: EntityRepository
) -> dummy_pb2.ListEntitiesResponse:
    owner_id = parse_uuid("owner_id", request.owner_id)
    limit = page_size(request.page_size)
    after = decode_page_token(owner_id, request.page_token) if request.page_token else None
    page = await repository.list(owner_id, after, limit)
    return dummy_pb2.ListEntitiesResponse(
        entities=[entity_message(e) for e in page.entities],
        next_page_token=encode_page_token(owner_id, page.next_cursor) if page.next_cursor else "",
    )
