"""The owners port: the dummy service asks whether an owner id is a user."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID


class Owners(Protocol):
    async def exists(self, owner_id: UUID) -> bool:
        """True when ``owner_id`` is a user. Raises OwnersUnavailable when that cannot
        be known now."""
        ...
