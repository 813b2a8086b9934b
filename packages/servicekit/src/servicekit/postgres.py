"""The asyncpg pool every service uses, and translation of connection failures.

Start-up retries the first connection (tenacity) so a service may start before its
database is ready. Afterwards asyncpg replaces broken connections on its own; what
a lost connection does to an in-flight query is turned into
:class:`~servicekit.errors.StorageUnavailable` by :func:`storage_errors`, so the
caller gets UNAVAILABLE (retryable), never INTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from servicekit.errors import StorageUnavailable

logger = logging.getLogger(__name__)

# Failures that mean "the database is not reachable right now", as opposed to a
# query error (a bug or a constraint violation, handled by the repository).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


async def create_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    connect_timeout: float,
    command_timeout: float,
) -> asyncpg.Pool:
    """Open a pool, retrying until the database answers or ``connect_timeout`` passes.

    Released connections are not reset (asyncpg's default runs ``RESET ALL``, ``UNLISTEN``,
    ``CLOSE ALL`` and unlocks advisory locks: one more round trip per query). The kit's
    services keep no session state on pooled connections (no ``SET``, ``LISTEN`` or
    cursors outside a transaction; the runner expires the connections after migrations,
    which hold an advisory lock); an open transaction is still rolled back by asyncpg.
    """
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(connect_timeout),
        wait=wait_exponential(multiplier=0.05, max=2),
        retry=retry_if_exception_type(CONNECTION_ERRORS),
        before_sleep=_log_retry,
        reraise=True,
    ):
        with attempt:
            return await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                command_timeout=command_timeout,
                timeout=min(connect_timeout, 10.0),
                reset=_leave_as_is,
            )
    raise AssertionError("unreachable: tenacity reraises the last error")


async def _leave_as_is(connection: asyncpg.Connection) -> None:
    """The pool's reset: nothing to undo (see create_pool)."""


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.warning(
        "database not reachable yet (%s: %s); retrying in %.2fs",
        type(error).__name__,
        error,
        wait,
    )


@asynccontextmanager
async def storage_errors() -> AsyncIterator[None]:
    """Turn a lost or refused database connection into StorageUnavailable."""
    try:
        yield
    except CONNECTION_ERRORS as error:
        logger.warning("storage unavailable: %s: %s", type(error).__name__, error)
        raise StorageUnavailable() from error
