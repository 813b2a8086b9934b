"""The asyncpg pool every service uses, and translation of connection failures.

Start-up retries the first connection (tenacity) so a service may start before its
database is ready. Afterwards asyncpg replaces broken connections on its own; what
a lost connection does to an in-flight query is turned into
:class:`~servicekit.errors.StorageUnavailable` by :func:`storage_errors`, so the
caller gets UNAVAILABLE (retryable), never INTERNAL; a value the database cannot
take (out of range, not representable) becomes INVALID_ARGUMENT. The same
translation (:func:`storage_failure`) backs up the status mapping of
``servicekit.calls`` for what escapes a repository.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import asyncpg.exceptions._base as asyncpg_client_errors
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from servicekit.errors import InvalidArgument, ServiceError, StorageUnavailable

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


# A value of the request the database cannot take: PostgreSQL's class 22 ("data
# exception": out of range, invalid representation, a NUL in text...) and asyncpg's
# own DataError, raised when a query argument cannot be encoded (a datetime whose UTC
# instant falls outside year 1..9999). The latter subclasses InterfaceError, which
# means a lost connection: it must be checked first.
VALUE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg_client_errors.DataError,
)


class UnstorableValue(InvalidArgument):
    """A value of the request that the database refused to store or compare."""

    def __init__(self, error: BaseException) -> None:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        super().__init__("request", f"holds a value the database cannot take: {reason}")


def storage_failure(error: BaseException) -> ServiceError | None:
    """The service error a database failure means for the caller, or None when ``error``
    is not one it knows (a bug, a constraint the repository should have handled)."""
    if isinstance(error, VALUE_ERRORS):
        return UnstorableValue(error)
    if isinstance(error, CONNECTION_ERRORS):
        return StorageUnavailable()
    return None


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
    cursors outside a transaction; the runner migrates, under an advisory lock, on a
    connection of its own); an open transaction is still rolled back by asyncpg.
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
    """Turn a lost or refused database connection into StorageUnavailable, and a value
    the database cannot take into InvalidArgument (:func:`storage_failure`)."""
    try:
        yield
    except Exception as error:
        failure = storage_failure(error)
        if failure is None:
            raise
        logger.warning("%s: %s: %s", failure.message, type(error).__name__, error)
        raise failure from error
