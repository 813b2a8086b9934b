"""What faults a test injected, and when: the fault section of a failure report."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["FaultEntry", "FaultJournal"]


@dataclass(frozen=True)
class FaultEntry:
    seconds: float  # since the journal was last cleared (the test's start, in a stack)
    target: str  # "dummy -> user", "postgres"
    action: str  # "cut", "restore", "kill"...


class FaultJournal:
    """A list of fault actions, written by links and the Postgres control from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._entries: list[FaultEntry] = []

    def record(self, target: str, action: str) -> None:
        with self._lock:
            self._entries.append(FaultEntry(time.monotonic() - self._started, target, action))

    @property
    def entries(self) -> tuple[FaultEntry, ...]:
        with self._lock:
            return tuple(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._started = time.monotonic()

    def render(self) -> str:
        return "\n".join(
            f"+{entry.seconds:7.3f} s  {entry.target}: {entry.action}" for entry in self.entries
        )
