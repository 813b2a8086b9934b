"""Errors of the dummy service.

    DummyError
    ├── EntityNotFound         (NotFound)       no entity with this id for this owner
    └── StorageUnavailable     (Unavailable)    from servicekit: the database is unreachable

Validation failures are servicekit's InvalidArgument, which names the field.
"""

from __future__ import annotations

from uuid import UUID

from servicekit.errors import NotFound, ServiceError


class DummyError(ServiceError):
    """Base of the dummy service's own errors."""


class EntityNotFound(DummyError, NotFound):
    def __init__(self, entity_id: UUID) -> None:
        # Deliberately the same for "does not exist" and "owned by someone else".
        super().__init__(f"entity {entity_id} not found")
