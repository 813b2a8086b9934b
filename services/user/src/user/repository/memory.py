"""An in-memory user repository: the fake every unit test uses (shipped next to the port).

It behaves like the Postgres adapter, including case-insensitive e-mail
uniqueness, and can be told to fail like an unreachable database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from servicekit.fakes import StorageSwitch
from user.domain import NewUser, User, email_key
from user.errors import EmailAlreadyUsed


class InMemoryUserRepository(StorageSwitch):
    def __init__(self) -> None:
        self._users: dict[UUID, User] = {}
        self._by_email: dict[str, UUID] = {}  # email_key(email) -> id, the unique index

    async def create(self, new: NewUser) -> User:
        self._check_available()
        key = email_key(new.email)
        if key in self._by_email:
            raise EmailAlreadyUsed(new.email)
        user = User(uuid4(), new.email, new.name, new.avatar_url, datetime.now(UTC))
        self._users[user.id] = user
        self._by_email[key] = user.id
        return user

    async def get(self, user_id: UUID) -> User | None:
        self._check_available()
        return self._users.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        self._check_available()
        user_id = self._by_email.get(email_key(email))
        return None if user_id is None else self._users[user_id]
