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
    └── DeadlineExceeded            DEADLINE_EXCEEDED: a dependency did not answer in time

Anything else that escapes a handler is a bug: it is logged with its traceback and
answered INTERNAL with a message that leaks nothing.
"""

from __future__ import annotations

from typing import ClassVar

import grpc


class ServiceError(Exception):
    """Base of every expected failure; subclass a kind below, never this directly."""

    status_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

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


def status_of(error: ServiceError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and details for an expected failure."""
    return error.status_code, error.message


class StorageUnavailable(Unavailable):
    """The service's database could not be reached or dropped the connection."""

    def __init__(self, message: str = "storage is unavailable, retry later") -> None:
        super().__init__(message)
