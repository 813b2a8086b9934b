"""The entity repository on PostgreSQL (asyncpg, plain SQL)."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from dummy.domain import Entity, EntityChanges, NewEntity, Page, PageCursor
from dummy.errors import CreatedEntityDeleted
from servicekit.postgres import storage_errors, storage_write

# What a caller should do when a write's connection was lost after it was sent
# (WriteOutcomeUnknown's advice; contracts/dummy/v1/dummy.proto documents them).
RETRY_WITH_REQUEST_ID = "retry with the same request_id"
RETRY_WITHOUT_REQUEST_ID = (
    "a retry may create a second entity: list the entities to check, "
    "and send a request_id to make retries safe"
)
RETRY_UPDATE = "retry: an update sets the same values again"
RETRY_DELETE = "retry: NOT_FOUND then means it was deleted"

_COLUMNS = "id, owner_id, name, description, created_at, updated_at"

# The clock is read once, so that a new entity's updated_at equals its created_at: two
# clock_timestamp() calls may fall a microsecond apart.
_INSERT = f"""
INSERT INTO entities (id, owner_id, name, description, created_at, updated_at)
SELECT $1, $2, $3, $4, clock.now, clock.now FROM (SELECT clock_timestamp() AS now) AS clock
RETURNING {_COLUMNS}
"""

# One statement, so one transaction: the key is claimed and the entity stored together
# or not at all. When another request holds the key, nothing is inserted (no row back).
_CLAIM_AND_INSERT = f"""
WITH claimed AS (
    INSERT INTO create_requests (owner_id, request_id, entity_id, created_at)
    SELECT $2, $5, $1, clock_timestamp()
    ON CONFLICT (owner_id, request_id) DO NOTHING
    RETURNING entity_id, created_at
)
INSERT INTO entities (id, owner_id, name, description, created_at, updated_at)
SELECT claimed.entity_id, $2, $3, $4, claimed.created_at, claimed.created_at FROM claimed
RETURNING {_COLUMNS}
"""

# The entity a spent key created: its columns are NULL when it has been deleted.
_FIRST_OF_REQUEST = """
SELECT request.entity_id, entity.id, entity.owner_id, entity.name, entity.description,
       entity.created_at, entity.updated_at
FROM create_requests AS request
LEFT JOIN entities AS entity ON entity.id = request.entity_id
WHERE request.owner_id = $1 AND request.request_id = $2
"""


def _entity(row: asyncpg.Record) -> Entity:
    return Entity(
        id=row["id"],
        owner_id=row["owner_id"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class PostgresEntityRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, new: NewEntity) -> Entity:
        entity_id = uuid4()
        if new.request_id is None:
            async with storage_write(self._pool, if_unknown=RETRY_WITHOUT_REQUEST_ID) as db:
                row = await db.fetchrow(_INSERT, entity_id, new.owner_id, new.name, new.description)
            assert row is not None, "INSERT ... RETURNING returns its row"
            return _entity(row)
        async with storage_write(self._pool, if_unknown=RETRY_WITH_REQUEST_ID) as db:
            row = await db.fetchrow(
                _CLAIM_AND_INSERT,
                entity_id,
                new.owner_id,
                new.name,
                new.description,
                new.request_id,
            )
            if row is not None:
                return _entity(row)
            # The key was spent by an earlier request (ON CONFLICT waited for it to commit;
            # this statement's snapshot sees it). Key rows are never deleted, so it is there;
            # its entity may have been deleted since, before or while this retry ran.
            first = await db.fetchrow(_FIRST_OF_REQUEST, new.owner_id, new.request_id)
        if first is None:
            raise RuntimeError(f"create_requests lost the key {new.request_id}: rows are kept")
        if first["id"] is None:
            raise CreatedEntityDeleted(new.request_id, first["entity_id"])
        return _entity(first)

    async def get(self, owner_id: UUID, entity_id: UUID) -> Entity | None:
        async with storage_errors():
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM entities WHERE owner_id = $1 AND id = $2",
                owner_id,
                entity_id,
            )
        return None if row is None else _entity(row)

    async def list(self, owner_id: UUID, after: PageCursor | None, limit: int) -> Page:
        async with storage_errors():
            # One row more than asked tells whether another page follows.
            if after is None:
                rows = await self._pool.fetch(
                    f"""
                    SELECT {_COLUMNS} FROM entities WHERE owner_id = $1
                    ORDER BY created_at, id LIMIT $2
                    """,
                    owner_id,
                    limit + 1,
                )
            else:
                rows = await self._pool.fetch(
                    f"""
                    SELECT {_COLUMNS} FROM entities
                    WHERE owner_id = $1 AND (created_at, id) > ($2, $3)
                    ORDER BY created_at, id LIMIT $4
                    """,
                    owner_id,
                    after.created_at,
                    after.id,
                    limit + 1,
                )
        entities = [_entity(row) for row in rows[:limit]]
        has_more = len(rows) > limit
        last = entities[-1] if has_more else None
        return Page(entities, PageCursor(last.created_at, last.id) if last else None)

    async def update(
        self, owner_id: UUID, entity_id: UUID, changes: EntityChanges
    ) -> Entity | None:
        async with storage_write(self._pool, if_unknown=RETRY_UPDATE) as db:
            row = await db.fetchrow(
                f"""
                UPDATE entities SET
                    name = coalesce($3, name),
                    description = coalesce($4, description),
                    updated_at = clock_timestamp()
                WHERE owner_id = $1 AND id = $2
                RETURNING {_COLUMNS}
                """,
                owner_id,
                entity_id,
                changes.name,
                changes.description,
            )
        return None if row is None else _entity(row)

    async def delete(self, owner_id: UUID, entity_id: UUID) -> bool:
        async with storage_write(self._pool, if_unknown=RETRY_DELETE) as db:
            status = await db.execute(
                "DELETE FROM entities WHERE owner_id = $1 AND id = $2", owner_id, entity_id
            )
        return bool(status == "DELETE 1")
