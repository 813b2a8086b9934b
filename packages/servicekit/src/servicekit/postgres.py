"""The asyncpg pool every service uses, and translation of connection failures.

Start-up retries the first connection (tenacity) so a service may start before its
database is ready. Afterwards asyncpg replaces broken connections on its own; what
a lost connection does to an in-flight query is turned into
:class:`~servicekit.errors.StorageUnavailable` by :func:`storage_errors`, so the
caller gets UNAVAILABLE (retryable), never INTERNAL; a value the database cannot
take (out of range, not representable) becomes INVALID_ARGUMENT. The same
translation (:func:`storage_failure`) backs up the status mapping of
``servicekit.calls`` for what escapes a repository.

A lost database shows up as many exceptions, depending on when the connection went:
refused or reset sockets (OSError), the server's "terminating connection" errors
(57P01 admin shutdown on a restart, 57P02 crash, 57P03 starting up), asyncpg's
ConnectionDoesNotExistError ("closed in the middle of operation") and, when the
server's FATAL error arrived on an idle pooled connection that is then used or
released, asyncpg's ``InternalClientError: cannot switch to state N; another
operation (2) is in progress`` (its protocol is still consuming that error). All of
them are UNAVAILABLE (:func:`is_connection_failure`).

A write uses :func:`storage_write`, which also tells a failure before the statement
was sent (nothing changed: StorageUnavailable) from one after (the outcome is unknown:
:class:`~servicekit.errors.WriteOutcomeUnknown`), and never fails a statement that was
answered because the connection broke while it went back to the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import asyncpg.exceptions._base as asyncpg_client_errors
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from servicekit.errors import (
    InvalidArgument,
    ServiceError,
    StorageUnavailable,
    WriteOutcomeUnknown,
)

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
    asyncpg.IdleSessionTimeoutError,
)

# How asyncpg's protocol says that a connection is not in a state to run anything: the
# server ended the session (its FATAL error is being consumed) or the socket is gone.
# Other InternalClientErrors are asyncpg's bugs or ours, and stay INTERNAL.
_BROKEN_PROTOCOL_MESSAGES = ("cannot switch to state", "not connected")


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


def is_connection_failure(error: BaseException) -> bool:
    """True when ``error`` means the connection to the database is lost or cannot be made."""
    if isinstance(error, VALUE_ERRORS):
        return False  # asyncpg's DataError subclasses InterfaceError
    if isinstance(error, CONNECTION_ERRORS):
        return True
    return type(error) is asyncpg.InternalClientError and str(error).startswith(
        _BROKEN_PROTOCOL_MESSAGES
    )


def _sent_nothing(error: BaseException) -> bool:
    """True when asyncpg refused ``error``'s operation before writing anything to the
    server: its own checks of the connection (closed, busy: InterfaceError) and of the
    protocol's state, which both run before a statement is sent."""
    if isinstance(error, asyncpg.InterfaceError) and not isinstance(error, VALUE_ERRORS):
        return True
    return type(error) is asyncpg.InternalClientError and str(error).startswith(
        _BROKEN_PROTOCOL_MESSAGES
    )


def storage_failure(error: BaseException) -> ServiceError | None:
    """The service error a database failure means for the caller, or None when ``error``
    is not one it knows (a bug, a constraint the repository should have handled)."""
    if isinstance(error, VALUE_ERRORS):
        return UnstorableValue(error)
    if is_connection_failure(error):
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


@asynccontextmanager
async def storage_write(pool: asyncpg.Pool, *, if_unknown: str) -> AsyncIterator[Any]:
    """A connection of ``pool`` for one write (statements in autocommit), with failures
    translated by when they happened:

    - the connection cannot be had (refused, starting up, too many clients):
      StorageUnavailable, nothing was sent;
    - the connection is lost while a statement runs (sent, so it may have been executed
      and committed or not): :class:`WriteOutcomeUnknown` with ``if_unknown``, the
      caller's advice (``"retry with the same request_id"``); when asyncpg refused the
      statement before sending it (a connection found broken): StorageUnavailable;
    - a value the database cannot take: InvalidArgument (:func:`storage_failure`);
    - the connection breaks as it goes back to the pool, after the statements were
      answered: logged and ignored (asyncpg discards that connection), the answer stands.
      ``pool.fetchrow`` and friends would raise it and turn a committed write into an
      error: the release failure of issue 10 defect 3.

    Any other error passes unchanged. Typed ``Any`` like asyncpg's own connections
    (the pool hands out a proxy of ``asyncpg.Connection``).
    """
    async with storage_errors():
        connection = await pool.acquire()
    try:
        try:
            yield connection
        except Exception as error:
            failure: ServiceError | None
            if not is_connection_failure(error):
                failure = storage_failure(error)  # a value the database cannot take
                if failure is None:
                    raise
            elif _sent_nothing(error):
                failure = StorageUnavailable()
            else:
                failure = WriteOutcomeUnknown(if_unknown)
            logger.warning("%s: %s: %s", failure.message, type(error).__name__, error)
            raise failure from error
    finally:
        try:
            await pool.release(connection)
        except Exception as error:
            if not is_connection_failure(error):
                raise
            logger.warning(
                "a connection broke as it went back to the pool (%s: %s); "
                "the statement's answer stands",
                type(error).__name__,
                error,
            )
