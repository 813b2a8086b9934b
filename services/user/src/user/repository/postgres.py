"""The user repository on PostgreSQL (asyncpg, plain SQL)."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from servicekit.postgres import storage_errors, storage_write
from user.domain import NewUser, User
from user.errors import EmailAlreadyUsed

_COLUMNS = "id, email, name, avatar_url, created_at"
# The unique index on lower(email), from migrations/0001_create_users.sql.
_EMAIL_INDEX = "users_email_key"
# What a caller should do when the connection was lost after the insert was sent.
RETRY_CREATE = "retry: ALREADY_EXISTS then means it was created (GetUserByEmail finds it)"


def _user(row: asyncpg.Record) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        avatar_url=row["avatar_url"],
        created_at=row["created_at"],
    )


class PostgresUserRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, new: NewUser) -> User:
        async with storage_write(self._pool, if_unknown=RETRY_CREATE) as db:
            try:
                row = await db.fetchrow(
                    f"""
                    INSERT INTO users (id, email, name, avatar_url, created_at)
                    VALUES ($1, $2, $3, $4, clock_timestamp())
                    RETURNING {_COLUMNS}
                    """,
                    uuid4(),
                    new.email,
                    new.name,
                    new.avatar_url,
                )
            except asyncpg.UniqueViolationError as error:
                # The index, not a check before the insert, decides: two concurrent
                # creates of one e-mail cannot both succeed.
                if error.constraint_name != _EMAIL_INDEX:
                    raise
                raise EmailAlreadyUsed(new.email) from error
        assert row is not None, "INSERT ... RETURNING returns the row it inserted"
        return _user(row)

    async def get(self, user_id: UUID) -> User | None:
        async with storage_errors():
            row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)
        return None if row is None else _user(row)

    async def get_by_email(self, email: str) -> User | None:
        async with storage_errors():
            # lower(email) on both sides so that the unique index serves the lookup.
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM users WHERE lower(email) = lower($1)", email
            )
        return None if row is None else _user(row)
