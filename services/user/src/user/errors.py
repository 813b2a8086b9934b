"""Errors of the user service.

    UserError
    ├── UserNotFound           (NotFound)       no user with this id or e-mail
    ├── EmailAlreadyUsed       (AlreadyExists)  another user has this e-mail (in any case)
    └── StorageUnavailable     (Unavailable)    from servicekit: the database is unreachable

Validation failures are servicekit's InvalidArgument, which names the field.
"""

from __future__ import annotations

from uuid import UUID

from servicekit.errors import AlreadyExists, NotFound, ServiceError


class UserError(ServiceError):
    """Base of the user service's own errors."""


class UserNotFound(UserError, NotFound):
    def __init__(self, user_id: UUID | None = None, *, email: str | None = None) -> None:
        # The e-mail stays out of the message: messages end up in logs.
        super().__init__(f"user {user_id} not found" if email is None else "no user has this email")
        self.user_id = user_id
        self.email = email


class EmailAlreadyUsed(UserError, AlreadyExists):
    def __init__(self, email: str) -> None:
        super().__init__("email: a user with this email already exists")
        self.email = email
