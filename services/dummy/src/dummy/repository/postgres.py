"""The entity repository on PostgreSQL (asyncpg, plain SQL)."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from dummy.domain import Entity, EntityChanges, NewEntity, Page, PageCursor
from servicekit.postgres import storage_errors

_COLUMNS = "id, owner_id, name, description, created_at, updated_at"


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
        async with storage_errors():
            # The clock is read once, so that a new entity's updated_at equals its
            # created_at: two clock_timestamp() calls may fall a microsecond apart.
            row = await self._pool.fetchrow(
                f"""
                INSERT INTO entities
                    (id, owner_id, name, description, request_id, created_at, updated_at)
                SELECT $1, $2, $3, $4, $5, clock.now, clock.now
                FROM (SELECT clock_timestamp() AS now) AS clock
                ON CONFLICT (owner_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
                RETURNING {_COLUMNS}
                """,
                uuid4(),
                new.owner_id,
                new.name,
                new.description,
                new.request_id,
            )
            if row is None:  # a retry of a create that already happened
                row = await self._pool.fetchrow(
                    f"SELECT {_COLUMNS} FROM entities WHERE owner_id = $1 AND request_id = $2",
                    new.owner_id,
                    new.request_id,
                )
        assert row is not None, "the conflicting row exists: rows are never deleted in between"
        return _entity(row)

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
        async with storage_errors():
            row = await self._pool.fetchrow(
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
        async with storage_errors():
            status = await self._pool.execute(
                "DELETE FROM entities WHERE owner_id = $1 AND id = $2", owner_id, entity_id
            )
        return bool(status == "DELETE 1")
