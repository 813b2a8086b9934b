"""In-memory owners: the fake unit tests use (shipped next to the port)."""

from __future__ import annotations

from uuid import UUID

from dummy.errors import OwnersUnavailable


class InMemoryOwners:
    """Every id is a user, unless ``known`` is given; ``unavailable`` fails every call."""

    def __init__(self, known: set[UUID] | None = None) -> None:
        self.known = known
        self.unavailable = False
        self.asked: list[UUID] = []

    async def exists(self, owner_id: UUID) -> bool:
        self.asked.append(owner_id)
        if self.unavailable:
            raise OwnersUnavailable("UNAVAILABLE")
        return self.known is None or owner_id in self.known
