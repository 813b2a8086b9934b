"""The one mapping from failures to gRPC status (servicekit.calls), exercised without a network."""

from __future__ import annotations

from typing import Any, NoReturn

import asyncpg
import asyncpg.exceptions._base as asyncpg_client_errors
import grpc
import pytest
from opentelemetry import trace

from servicekit.calls import CallPolicy, wrap_handler
from servicekit.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceError,
    StorageUnavailable,
    Unauthenticated,
    Unavailable,
)


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class FakeContext:
    """Records what the wrapped handler aborts with, as grpc.aio's context would."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def code(self) -> grpc.StatusCode | None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


async def call_through_wrapper(raised: BaseException) -> Any:
    async def behavior(request: Any, context: Any) -> Any:
        raise raised

    handler = wrap_handler(
        "/test.v1.Test/Call",
        grpc.unary_unary_rpc_method_handler(behavior),
        tracer=trace.NoOpTracer(),
        policy=CallPolicy(),
    )
    return await handler.unary_unary(b"", FakeContext())  # type: ignore[arg-type,misc]


CASES: dict[str, tuple[ServiceError, grpc.StatusCode, str]] = {
    "invalid argument names the field": (
        InvalidArgument("owner_id", "must be a UUID"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "owner_id: must be a UUID",
    ),
    "not found": (NotFound("entity x not found"), grpc.StatusCode.NOT_FOUND, "entity x not found"),
    "already exists": (AlreadyExists("taken"), grpc.StatusCode.ALREADY_EXISTS, "taken"),
    "failed precondition": (
        FailedPrecondition("not configured"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "not configured",
    ),
    "permission denied": (PermissionDenied("no"), grpc.StatusCode.PERMISSION_DENIED, "no"),
    "unauthenticated": (Unauthenticated("who?"), grpc.StatusCode.UNAUTHENTICATED, "who?"),
    "unavailable": (Unavailable("down"), grpc.StatusCode.UNAVAILABLE, "down"),
    "storage unavailable": (
        StorageUnavailable(),
        grpc.StatusCode.UNAVAILABLE,
        "storage is unavailable, retry later",
    ),
    "deadline exceeded": (DeadlineExceeded("slow"), grpc.StatusCode.DEADLINE_EXCEEDED, "slow"),
}


@pytest.mark.parametrize(("error", "code", "details"), CASES.values(), ids=CASES.keys())
async def test_service_errors_become_their_status(
    error: ServiceError, code: grpc.StatusCode, details: str
) -> None:
    with pytest.raises(Aborted) as aborted:
        await call_through_wrapper(error)
    assert (aborted.value.code, aborted.value.details) == (code, details)


async def test_a_subclass_of_a_kind_keeps_the_kinds_status() -> None:
    class DummyError(ServiceError):
        """A service's own base class sits before the kind in the MRO."""

    class EntityNotFound(DummyError, NotFound):
        pass

    with pytest.raises(Aborted) as aborted:
        await call_through_wrapper(EntityNotFound("gone"))
    assert aborted.value.code == grpc.StatusCode.NOT_FOUND


async def test_an_unexpected_exception_is_internal_and_leaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(Aborted) as aborted:
        await call_through_wrapper(KeyError("secret column name"))
    assert aborted.value.code == grpc.StatusCode.INTERNAL
    assert "secret" not in aborted.value.details
    assert "unexpected error in /test.v1.Test/Call" in caplog.text


# What escapes a repository from the database still gets its meaning (the repositories
# wrap their queries in storage_errors(); this is the net under them).
DATABASE_FAILURES: dict[str, tuple[Exception, grpc.StatusCode, str]] = {
    "a value out of range in the server": (
        asyncpg.DatetimeFieldOverflowError("date/time field value out of range"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "request: holds a value the database cannot take: date/time field value out of range",
    ),
    "a NUL in text": (
        asyncpg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00'),
        grpc.StatusCode.INVALID_ARGUMENT,
        "request: holds a value the database cannot take: invalid byte sequence",
    ),
    "an argument the driver cannot encode": (
        asyncpg_client_errors.DataError(
            "invalid input for query argument $2: datetime.datetime(1, 1, 1, 0, 0, "
            "tzinfo=datetime.timezone(datetime.timedelta(seconds=18000))) "
            "(date value out of range)"
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "request: holds a value the database cannot take: invalid input for query argument",
    ),
    "a refused connection": (
        ConnectionRefusedError("connect call failed"),
        grpc.StatusCode.UNAVAILABLE,
        "storage is unavailable, retry later",
    ),
}


@pytest.mark.parametrize(
    ("error", "code", "details"), DATABASE_FAILURES.values(), ids=DATABASE_FAILURES.keys()
)
async def test_a_database_failure_that_escaped_gets_its_status(
    error: Exception, code: grpc.StatusCode, details: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(Aborted) as aborted:
        await call_through_wrapper(error)
    assert aborted.value.code == code
    assert aborted.value.details.startswith(details)
    assert "unexpected error" not in caplog.text, "no traceback: it is not a bug of the service"
