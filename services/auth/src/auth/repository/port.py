"""The storage ports of the auth service. Implementations raise StorageUnavailable
when storage cannot be reached."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from auth.domain import OauthAccount
from auth.oauth.port import Provider
from auth.sessions import StoredSession


class SessionRepository(Protocol):
    async def create(self, session: StoredSession) -> None: ...

    async def get(self, session_id: str) -> StoredSession | None: ...

    async def set_expire_time(self, session_id: str, expire_time: datetime) -> None: ...

    async def delete(self, session_id: str) -> None: ...


class OauthAccountRepository(Protocol):
    async def link(self, provider: Provider, provider_user_id: str, user_id: UUID) -> OauthAccount:
        """Link the account to ``user_id``, or return the existing link, whichever user
        it names: the caller decides what a link to another user means."""
        ...

    async def get(self, provider: Provider, provider_user_id: str) -> OauthAccount | None: ...
