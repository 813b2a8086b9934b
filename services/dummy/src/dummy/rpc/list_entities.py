"""ListEntities: keyset pagination in (created_at, id) order.

The page token is opaque to callers (``page_token.py`` holds its format): the last
entity's (created_at, id) and the owner it was issued for, decoded strictly and
checked in full, so a token of another owner, a tampered or a made-up one is
INVALID_ARGUMENT rather than a wrong page or a database error.
"""

from __future__ import annotations

from dummy.domain import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from dummy.repository import EntityRepository
from dummy.rpc.convert import entity_message
from dummy.rpc.page_token import decode_page_token, encode_page_token
from dummy.v1 import dummy_pb2
from servicekit.errors import InvalidArgument
from servicekit.validation import parse_uuid


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
