"""The storage port of the dummy service: what the RPCs need from a repository.

Every method is scoped to an owner; an entity of another owner is simply absent.
Implementations raise StorageUnavailable when storage cannot be reached.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from dummy.domain import Entity, EntityChanges, NewEntity, Page, PageCursor


class EntityRepository(Protocol):
    async def create(self, new: NewEntity) -> Entity:
        """Store a new entity; with a request_id already used by this owner, return
        the entity stored then instead (as it is now), or raise CreatedEntityDeleted
        when that entity has been deleted since. Safe against a concurrent delete."""
        ...

    async def get(self, owner_id: UUID, entity_id: UUID) -> Entity | None: ...

    async def list(self, owner_id: UUID, after: PageCursor | None, limit: int) -> Page:
        """Up to ``limit`` entities in (created_at, id) order, starting after ``after``."""
        ...

    async def update(
        self, owner_id: UUID, entity_id: UUID, changes: EntityChanges
    ) -> Entity | None: ...

    async def delete(self, owner_id: UUID, entity_id: UUID) -> bool:
        """True when an entity was deleted."""
        ...
