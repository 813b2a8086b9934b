"""The auth repositories on PostgreSQL (asyncpg, plain SQL)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from auth.domain import OauthAccount
from auth.oauth.port import Provider
from auth.sessions import StoredSession
from servicekit.postgres import storage_errors, storage_write

# What a caller should do when the connection was lost after a write was sent.
RETRY_LOGIN = "log in again"
RETRY_IDEMPOTENT = "retry: it is idempotent"


class PostgresSessionRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, session: StoredSession) -> None:
        async with storage_write(self._pool, if_unknown=RETRY_LOGIN) as db:
            await db.execute(
                "INSERT INTO sessions (id, user_id, secret_hash, expire_time) "
                "VALUES ($1, $2, $3, $4)",
                session.id,
                session.user_id,
                session.secret_hash,
                session.expire_time,
            )

    async def get(self, session_id: str) -> StoredSession | None:
        async with storage_errors():
            row = await self._pool.fetchrow(
                "SELECT id, user_id, secret_hash, expire_time FROM sessions WHERE id = $1",
                session_id,
            )
        if row is None:
            return None
        return StoredSession(
            row["id"], row["user_id"], bytes(row["secret_hash"]), row["expire_time"]
        )

    async def set_expire_time(self, session_id: str, expire_time: datetime) -> None:
        async with storage_write(self._pool, if_unknown=RETRY_IDEMPOTENT) as db:
            await db.execute(
                "UPDATE sessions SET expire_time = $2 WHERE id = $1", session_id, expire_time
            )

    async def delete(self, session_id: str) -> None:
        async with storage_write(self._pool, if_unknown=RETRY_IDEMPOTENT) as db:
            await db.execute("DELETE FROM sessions WHERE id = $1", session_id)


_ACCOUNT_COLUMNS = "provider, provider_user_id, user_id, created_at"


def _account(row: asyncpg.Record) -> OauthAccount:
    return OauthAccount(
        Provider(row["provider"]), row["provider_user_id"], row["user_id"], row["created_at"]
    )


class PostgresOauthAccountRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def link(self, provider: Provider, provider_user_id: str, user_id: UUID) -> OauthAccount:
        async with storage_write(self._pool, if_unknown=RETRY_IDEMPOTENT) as db:
            row = await db.fetchrow(
                "INSERT INTO oauth_accounts (provider, provider_user_id, user_id) "
                "VALUES ($1, $2, $3) ON CONFLICT (provider, provider_user_id) DO NOTHING "
                f"RETURNING {_ACCOUNT_COLUMNS}",
                provider.value,
                provider_user_id,
                user_id,
            )
        # Linked already (maybe by a concurrent login): a new statement sees the winner.
        existing = row or await self._get_row(provider, provider_user_id)
        assert existing is not None, "a conflicting link exists; links are never deleted"
        return _account(existing)

    async def _get_row(self, provider: Provider, provider_user_id: str) -> asyncpg.Record | None:
        async with storage_errors():
            return await self._pool.fetchrow(
                f"SELECT {_ACCOUNT_COLUMNS} FROM oauth_accounts "
                "WHERE provider = $1 AND provider_user_id = $2",
                provider.value,
                provider_user_id,
            )

    async def get(self, provider: Provider, provider_user_id: str) -> OauthAccount | None:
        row = await self._get_row(provider, provider_user_id)
        return None if row is None else _account(row)
