"""What every gRPC service of the kit shares; see each module's docstring."""

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
from servicekit.runner import ServiceDefinition, run_service
from servicekit.server import ServiceRegistration, create_server
from servicekit.settings import ServiceSettings

__all__ = [
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ServiceDefinition",
    "ServiceError",
    "ServiceRegistration",
    "ServiceSettings",
    "StorageUnavailable",
    "Unauthenticated",
    "Unavailable",
    "create_server",
    "run_service",
]
