"""The storage port of the user service: what the RPCs need from a repository.

E-mail addresses arrive normalized (see user.domain.normalize_email); the
repository compares them case-insensitively. Implementations raise
StorageUnavailable when storage cannot be reached.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from user.domain import NewUser, User


class UserRepository(Protocol):
    async def create(self, new: NewUser) -> User:
        """Store a new user; EmailAlreadyUsed when a user has this e-mail in any case."""
        ...

    async def get(self, user_id: UUID) -> User | None: ...

    async def get_by_email(self, email: str) -> User | None:
        """The user whose e-mail equals ``email`` compared case-insensitively."""
        ...
