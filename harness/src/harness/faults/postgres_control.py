"""The stack's Postgres under a fault test's control: stop it, kill it, start it again.

    stack.postgres.kill()       # SIGKILL to the postmaster and every backend: a crash
    ...                         # the services answer UNAVAILABLE (503 at the gateway)
    stack.postgres.start()      # same port, same data: the services reconnect

Both backends do the same thing: the server's processes stop (a fast shutdown) or die,
its data and its address stay. On the process backend that is the local server's
process group; on the docker backend the server's processes inside its container (the
container keeps running, so its tmpfs data and its published port stay; see
:mod:`harness.backends.docker`). The harness starts a stopped server again after each
test, so a test cannot leave the next one without a database.

With the harness's throwaway settings (``synchronous_commit=off``) a crash loses the
commits of the last fraction of a second (the WAL writer's delay, 200 ms by default), as
a real server with those settings would; :meth:`PostgresControl.durable` makes every
acknowledged commit survive a crash until the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

import asyncpg

from harness._loop import BackgroundLoop
from harness.errors import HarnessError, PostgresFaultError
from harness.faults.control import Control
from harness.faults.journal import FaultJournal
from harness.postgres import alter_system

__all__ = ["ControllablePostgres", "PostgresControl"]

_CONNECT_TIMEOUT = 10.0
T = TypeVar("T")


class ControllablePostgres(Protocol):
    """What a backend's Postgres offers for faults (``PostgresServer``, ``DockerPostgres``)."""

    @property
    def running(self) -> bool: ...

    @property
    def log_location(self) -> str: ...

    @property
    def address(self) -> str:
        """host:port of the server from the test process (it may move: ask each time)."""
        ...

    def dsn(self, database: str = "postgres") -> str: ...

    def log_tail(self, lines: int = 30) -> str: ...

    def shut_down(self) -> None: ...

    def crash(self) -> None: ...

    def start_again(self) -> None: ...


class PostgresControl(Control):
    """The stack's Postgres, for fault tests; each method returns once it is done (a
    stopped server is down, a started one accepts connections). The ``a``-prefixed
    variants do the same from a thread, so that the test's event loop goes on serving
    its own concurrent calls meanwhile."""

    def __init__(self, server: ControllablePostgres, journal: FaultJournal | None = None) -> None:
        self._server = server
        self._journal = journal
        self._down: str | None = None  # "stopped" or "killed" while a fault holds it
        self._durable: str | None = None  # synchronous_commit before durable()

    @property
    def running(self) -> bool:
        return self._server.running

    def dsn(self, database: str = "postgres") -> str:
        """A DSN of ``database`` on the server, from the test process."""
        return self._server.dsn(database)

    @property
    def faults(self) -> tuple[str, ...]:
        """The faults in force, in words (empty: it runs)."""
        return () if self._down is None else (self._down,)

    def stop(self) -> None:
        """A fast shutdown, as an operator's: open transactions are rolled back, sessions
        ended, and the server exits cleanly."""
        self._act("stop", self._server.shut_down)
        self._down = "stopped"

    def kill(self) -> None:
        """A crash: the postmaster and every backend SIGKILLed at once; the next start
        recovers from the WAL."""
        self._act("kill", self._server.crash)
        self._down = "killed"

    def start(self) -> None:
        """Start a stopped or killed server on its port and data; no-op when it runs."""
        if self._down is None and self.running:
            return
        self._act("start", self._server.start_again)
        self._down = None

    def durable(self) -> None:
        """Commit synchronously until the test ends (``synchronous_commit=on`` for every
        session, through a crash and restart too): every commit acknowledged before
        :meth:`kill` survives it. fsync stays off: the data would not survive the
        machine's crash, which no test causes. The harness sets it back after the test."""
        self._act("durable commits (synchronous_commit=on)", self._set_durable)

    def heal(self) -> None:
        """Start the server again if a test left it down, and undo :meth:`durable` (the
        harness calls this between tests)."""
        if self._down is not None or not self.running:
            self._act("start (healed by the harness)", self._server.start_again)
            self._down = None
        if self._durable is not None:
            self._act("asynchronous commits again (healed by the harness)", self._unset_durable)

    def _set_durable(self) -> None:
        async def set_durable() -> str:
            connection = await asyncpg.connect(self.dsn(), timeout=_CONNECT_TIMEOUT)
            try:
                before = str(await connection.fetchval("SHOW synchronous_commit"))
            finally:
                await connection.close()
            await alter_system(self.dsn(), "synchronous_commit", "on")
            return before

        self._durable = self._run(set_durable())

    def _unset_durable(self) -> None:
        assert self._durable is not None
        self._run(alter_system(self.dsn(), "synchronous_commit", self._durable))
        self._durable = None

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        # Its own loop thread: the caller may be inside a running event loop.
        with BackgroundLoop("harness-postgres-control") as loop:
            return loop.run(coroutine, timeout=_CONNECT_TIMEOUT * 3)

    def _act(self, action: str, operation: Callable[[], None]) -> None:
        try:
            operation()
        except (HarnessError, OSError, TimeoutError, asyncpg.PostgresError) as error:
            failure = PostgresFaultError(
                f"{action} of the stack's Postgres failed: {error}\n"
                "Remedy: the server's log (below) says why; if it cannot start again, the "
                "stacks of this session have no database: rerun the tests."
            )
            failure.add_note(
                f"Server log ({self._server.log_location}):\n{self._server.log_tail(15)}"
            )
            raise failure from error
        if self._journal is not None:
            self._journal.record("postgres", action)
