"""An event loop on a thread of its own, so synchronous code can await asyncpg.

Why a private thread: the session fixtures are synchronous and may run while
pytest-asyncio's loop exists but is not running (or, outside pytest, inside someone
else's running loop); ``asyncio.run`` in the caller's thread would either fail there or
replace the thread's current loop under pytest-asyncio. A loop on its own thread
collides with nothing, and keeps connections open between calls, which is what makes
the per-test reset a single round trip.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from types import TracebackType

__all__ = ["BackgroundLoop"]

T = TypeVar("T")


class BackgroundLoop:
    """Runs coroutines on a dedicated thread; use as a context manager."""

    def __init__(self, name: str = "harness-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result (at most ``timeout`` seconds)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            # On the loop's own thread: close() may be called inside another running
            # loop (an async test closing a link), where run_until_complete would fail.
            self.run(self._loop.shutdown_asyncgens())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        else:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()
