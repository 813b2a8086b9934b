"""What every fault control offers from its own stop, kill and start: restart, and the
``a``-prefixed variants that leave the test's event loop running meanwhile."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod


class Control(ABC):
    """Stop, kill and start something a fault test takes down; restart and the async
    variants follow from them."""

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def kill(self) -> None: ...

    @abstractmethod
    def start(self) -> None: ...

    def restart(self, *, kill: bool = False) -> None:
        """Stop (or, with ``kill=True``, crash) and start again."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def arestart(self, *, kill: bool = False) -> None:
        await (self.akill() if kill else self.astop())
        await self.astart()


__all__ = ["Control"]
