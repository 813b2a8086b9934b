"""A service of a stack, stopped, killed and started again by a fault test.

The same actions as :class:`~harness.faults.postgres.PostgresControl` for Postgres,
journaled the same way (the failure report lists them), with ``a``-prefixed variants
that leave the test's event loop running while the service goes down or comes up, so
that the test's own concurrent calls go on and see the fault. The harness starts again
before the next test whatever a test left down.
"""

from __future__ import annotations

import asyncio

from harness.faults.control import Control
from harness.faults.journal import FaultJournal
from harness.services import ServiceHandle


class ServiceControl(Control):
    """``stack.service(name)``: stop (SIGTERM: in-flight calls drain), kill (SIGKILL: a
    crash), start (returns once it serves, on the same address), restart."""

    def __init__(self, handle: ServiceHandle, journal: FaultJournal) -> None:
        self._handle = handle
        self._journal = journal

    @property
    def name(self) -> str:
        return self._handle.name

    @property
    def running(self) -> bool:
        return self._handle.running

    def stop(self) -> None:
        self._handle.stop()
        self._journal.record(self.name, "stop")

    def kill(self) -> None:
        self._handle.kill()
        self._journal.record(self.name, "kill")

    def start(self) -> None:
        self._handle.start()
        self._journal.record(self.name, "start")

    async def astart(self) -> None:
        # Launched from this thread, waited for on another: a service process dies with
        # the thread that launched it (PR_SET_PDEATHSIG), and a worker thread may end
        # before the test does.
        self._handle.launch()
        await asyncio.to_thread(self._handle.wait_serving)
        self._journal.record(self.name, "start")


__all__ = ["ServiceControl"]
