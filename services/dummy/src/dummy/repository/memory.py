"""An in-memory entity repository: the fake every unit test uses (shipped next to the port).

It behaves like the Postgres adapter, including idempotent creates and keyset
pages, and can be told to fail like an unreachable database.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID, uuid4

from dummy.domain import Entity, EntityChanges, NewEntity, Page, PageCursor
from dummy.errors import CreatedEntityDeleted
from servicekit.fakes import StorageSwitch


class InMemoryEntityRepository(StorageSwitch):
    def __init__(self) -> None:
        self._entities: dict[UUID, Entity] = {}
        self._by_request: dict[tuple[UUID, UUID], UUID] = {}

    async def create(self, new: NewEntity) -> Entity:
        self._check_available()
        if new.request_id is not None:
            first = self._by_request.get((new.owner_id, new.request_id))
            if first is not None:
                if first not in self._entities:
                    raise CreatedEntityDeleted(new.request_id, first)
                return self._entities[first]
        now = datetime.now(UTC)
        entity = Entity(uuid4(), new.owner_id, new.name, new.description, now, now)
        self._entities[entity.id] = entity
        if new.request_id is not None:
            self._by_request[(new.owner_id, new.request_id)] = entity.id
        return entity

    async def get(self, owner_id: UUID, entity_id: UUID) -> Entity | None:
        self._check_available()
        entity = self._entities.get(entity_id)
        return entity if entity is not None and entity.owner_id == owner_id else None

    async def list(self, owner_id: UUID, after: PageCursor | None, limit: int) -> Page:
        self._check_available()
        owned = sorted(
            (e for e in self._entities.values() if e.owner_id == owner_id),
            key=lambda e: (e.created_at, e.id),
        )
        if after is not None:
            owned = [e for e in owned if (e.created_at, e.id) > (after.created_at, after.id)]
        entities = owned[:limit]
        has_more = len(owned) > limit
        last = entities[-1] if has_more else None
        return Page(entities, PageCursor(last.created_at, last.id) if last else None)

    async def update(
        self, owner_id: UUID, entity_id: UUID, changes: EntityChanges
    ) -> Entity | None:
        current = await self.get(owner_id, entity_id)
        if current is None:
            return None
        updated = replace(
            current,
            name=current.name if changes.name is None else changes.name,
            description=current.description if changes.description is None else changes.description,
            updated_at=datetime.now(UTC),
        )
        self._entities[entity_id] = updated
        return updated

    async def delete(self, owner_id: UUID, entity_id: UUID) -> bool:
        if await self.get(owner_id, entity_id) is None:
            return False
        del self._entities[entity_id]  # its request_id stays spent, as in create_requests
        return True
