"""The kinds of failure a service reports, and the one place they become gRPC status.

Each service declares its own hierarchy (``<service>.errors``) by subclassing one
base class of its own *and* one kind below; the kind alone decides the status code
(the code is a class attribute, as grpc-interceptor does it). Domain code raises
these and never touches gRPC; :func:`status_of` is the only mapping.

    ServiceError                    (base of every expected failure)
    ├── InvalidArgument             INVALID_ARGUMENT: bad input; the message names the field
    ├── NotFound                    NOT_FOUND
    ├── AlreadyExists               ALREADY_EXISTS
    ├── FailedPrecondition          FAILED_PRECONDITION: the system is not in a state to do it
    ├── PermissionDenied            PERMISSION_DENIED
    ├── Unauthenticated             UNAUTHENTICATED
    ├── Unavailable                 UNAVAILABLE: a dependency (storage, provider) is down
    │   └── StorageUnavailable      the database could not be reached: nothing was changed
    │       └── WriteOutcomeUnknown the connection was lost after a write was sent
    └── DeadlineExceeded            DEADLINE_EXCEEDED: a dependency did not answer in time

Anything else that escapes a handler is a bug: it is logged with its traceback and
answered INTERNAL with a message that leaks nothing.

**Outcome.** An RPC that fails has changed nothing: the kit's RPCs are atomic, so a
documented failure is a definite one. The exception is a write whose connection to the
database was lost after the statement was sent (during its execution or commit): the
database may or may not have applied it, and no one can tell the caller which.
:class:`WriteOutcomeUnknown` says so in its message, with what to do (for a create with
a request_id: retry with the same one). So that a caller such as the gateway can tell a
definite failure from an unknown outcome without reading messages, every status a kit
service answers from a ServiceError carries the trailing metadata
``kit-outcome`` (:data:`OUTCOME_KEY`): ``failed`` or ``unknown`` (:func:`outcome_of`);
INTERNAL (a bug, anywhere in the handler) is ``unknown``. A status without it did not
come from a kit handler (the transport: a connection reset, a deadline).
"""

from __future__ import annotations

from typing import ClassVar

import grpc


class ServiceError(Exception):
    """Base of every expected failure; subclass a kind below, never this directly."""

    status_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    # True when the change the call asked for may have been made despite the failure.
    outcome_unknown: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    status_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(ServiceError):
    status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    status_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    status_code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(ServiceError):
    status_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ServiceError):
    status_code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(ServiceError):
    status_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


# The trailing metadata key of a failed call's outcome (module docstring) and its values.
OUTCOME_KEY = "kit-outcome"
OUTCOME_FAILED = "failed"
OUTCOME_UNKNOWN = "unknown"


def status_of(error: ServiceError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and details for an expected failure."""
    return error.status_code, error.message


def outcome_of(error: ServiceError) -> str:
    """:data:`OUTCOME_UNKNOWN` when ``error`` leaves the change possibly made, else
    :data:`OUTCOME_FAILED`."""
    return OUTCOME_UNKNOWN if error.outcome_unknown else OUTCOME_FAILED


class StorageUnavailable(Unavailable):
    """The service's database could not be reached or dropped the connection."""

    def __init__(self, message: str = "storage is unavailable, retry later") -> None:
        super().__init__(message)


class WriteOutcomeUnknown(StorageUnavailable):
    """The connection to the database was lost after a write statement was sent: it may
    have been applied or not. ``advice`` tells the caller how to find out or retry safely
    (``"retry with the same request_id"``)."""

    outcome_unknown = True

    def __init__(self, advice: str) -> None:
        super().__init__(f"storage became unavailable during the write, outcome unknown; {advice}")
        self.advice = advice
