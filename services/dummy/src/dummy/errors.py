"""Errors of the dummy service.

    DummyError
    ├── EntityNotFound         (NotFound)            no entity with this id for this owner
    ├── UnknownOwner           (FailedPrecondition)  the owner is not a user
    ├── CreatedEntityDeleted   (FailedPrecondition)  a create retried after its entity was deleted
    ├── OwnersUnavailable      (Unavailable)         the user service could not be asked
    ├── OwnersTimedOut         (DeadlineExceeded)    the user service did not answer in time
    └── StorageUnavailable     (Unavailable)         from servicekit: the database is unreachable

Validation failures are servicekit's InvalidArgument, which names the field.
"""

from __future__ import annotations

from uuid import UUID

from servicekit.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    ServiceError,
    Unavailable,
)


class DummyError(ServiceError):
    """Base of the dummy service's own errors."""


class EntityNotFound(DummyError, NotFound):
    def __init__(self, entity_id: UUID) -> None:
        # Deliberately the same for "does not exist" and "owned by someone else".
        super().__init__(f"entity {entity_id} not found")


class UnknownOwner(DummyError, FailedPrecondition):
    def __init__(self, owner_id: UUID) -> None:
        super().__init__(f"owner_id {owner_id} is not a user")


class CreatedEntityDeleted(DummyError, FailedPrecondition):
    """A CreateEntity retried with its request_id after the entity it created was deleted:
    the key is spent, and the entity is not created again."""

    def __init__(self, request_id: UUID, entity_id: UUID) -> None:
        super().__init__(
            f"request_id {request_id} already created entity {entity_id}, which has since "
            "been deleted; send a new request_id to create another entity"
        )
        self.entity_id = entity_id


class OwnersUnavailable(DummyError, Unavailable):
    def __init__(self, reason: str) -> None:
        super().__init__(f"the user service could not be asked about the owner ({reason}); retry")


class OwnersTimedOut(DummyError, DeadlineExceeded):
    """The user service (a slow link, an overloaded server) did not answer within
    DUMMY_USER_TIMEOUT_SECONDS: a deadline, as the gateway's own would be (504 there)."""

    def __init__(self) -> None:
        super().__init__("the user service did not answer about the owner in time; retry")
