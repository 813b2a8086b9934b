"""In-memory auth repositories: the fakes unit tests use (shipped next to the ports).

They behave like the Postgres adapters and can be told to fail like an
unreachable database; they also count writes, so a test can assert that a call
wrote nothing (a wrong secret must never refresh or delete a session).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

from auth.domain import OauthAccount
from auth.errors import StorageUnavailable
from auth.oauth.port import Provider
from auth.sessions import StoredSession
from servicekit.fakes import StorageSwitch


class InMemorySessionRepository(StorageSwitch):
    storage_error = StorageUnavailable

    def __init__(self) -> None:
        self.sessions: dict[str, StoredSession] = {}
        self.writes = 0

    async def create(self, session: StoredSession) -> None:
        self._check_available()
        self.writes += 1
        self.sessions[session.id] = session

    async def get(self, session_id: str) -> StoredSession | None:
        self._check_available()
        return self.sessions.get(session_id)

    async def set_expire_time(self, session_id: str, expire_time: datetime) -> None:
        self._check_available()
        self.writes += 1
        if session_id in self.sessions:
            self.sessions[session_id] = replace(self.sessions[session_id], expire_time=expire_time)

    async def delete(self, session_id: str) -> None:
        self._check_available()
        self.writes += 1
        self.sessions.pop(session_id, None)


class InMemoryOauthAccountRepository(StorageSwitch):
    storage_error = StorageUnavailable

    def __init__(self) -> None:
        self.accounts: dict[tuple[Provider, str], OauthAccount] = {}

    async def link(self, provider: Provider, provider_user_id: str, user_id: UUID) -> OauthAccount:
        self._check_available()
        key = (provider, provider_user_id)
        if key not in self.accounts:
            self.accounts[key] = OauthAccount(
                provider, provider_user_id, user_id, datetime.now(UTC)
            )
        return self.accounts[key]

    async def get(self, provider: Provider, provider_user_id: str) -> OauthAccount | None:
        self._check_available()
        return self.accounts.get((provider, provider_user_id))
