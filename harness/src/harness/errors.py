"""Every error the harness raises; each message says what happened, what was tried and the remedy.

HarnessError
├── PostgresNotFoundError   no usable ``postgres`` and ``initdb`` binaries
├── PostgresStartError      initdb failed, or the server exited or never accepted connections
├── DatabaseSetupError      a template could not be created or migrated, or a clean-up failed
├── WorkspaceError          the workspace's pyproject files describe an impossible graph
├── ServiceStartError       a service process exited or stayed silent before it served
├── DockerBackendError      a container did not start or get healthy, or an image is missing
├── ImageError              an image build step failed (harness.images, `kit-images`)
├── StackError              a stack asked for what it cannot be: unknown service, cycle, bad link
├── LinkError               a fault proxy could not listen, or was used before it started
├── PostgresFaultError      a Postgres fault (stop, kill, start) could not be carried out
├── HttpFakeError           an HTTP fake raised while answering, or its server was misused
├── MockError               a gRPC mock was programmed or used wrongly (raised at once)
│   └── UnknownRpcError     no RPC of that name in the service (also an AttributeError)
├── MockVerificationError   a mock's verify() expectation failed (an AssertionError too)
├── ContractError           a contract's (kit.v1.may_return) option lists OK, nothing or no code
├── UndeclaredStatusError   a real service answered a code its RPC does not declare (an
│                           AssertionError too)
└── TraceAssertionError     a trace or its log lines are not as expected (an AssertionError too)

The three assertion errors are AssertionErrors too, so pytest reports them as a test's
failed expectation, not as an error of the harness.
"""

from __future__ import annotations

__all__ = [
    "ContractError",
    "DatabaseSetupError",
    "DockerBackendError",
    "HarnessError",
    "HttpFakeError",
    "ImageError",
    "LinkError",
    "MockError",
    "MockVerificationError",
    "PostgresFaultError",
    "PostgresNotFoundError",
    "PostgresStartError",
    "ServiceStartError",
    "StackError",
    "TraceAssertionError",
    "UndeclaredStatusError",
    "UnknownRpcError",
    "WorkspaceError",
]


class HarnessError(Exception):
    """Base class of every error the harness raises on its own account."""


class PostgresNotFoundError(HarnessError):
    """No directory holding both ``postgres`` and ``initdb`` was found."""


class PostgresStartError(HarnessError):
    """The throwaway server could not be initialised or never got ready."""


class DatabaseSetupError(HarnessError):
    """A declared database could not be created, migrated or brought back to a clean state."""


class WorkspaceError(HarnessError):
    """The workspace's pyproject files describe an impossible graph."""


class ServiceStartError(HarnessError):
    """A service process exited or stayed silent before it started serving."""


class DockerBackendError(HarnessError):
    """A container did not start, did not get healthy, or an image is missing."""


class ImageError(HarnessError):
    """An image build step failed (harness.images): the message says what to do."""


class StackError(HarnessError):
    """A stack was asked for something it cannot be: an unknown service, a cycle, a link
    between services that do not call each other..."""


class LinkError(HarnessError):
    """A fault proxy (:class:`~harness.faults.Link`) could not do what it was asked."""


class PostgresFaultError(HarnessError):
    """The stack's Postgres could not be stopped, killed or started again."""


class HttpFakeError(HarnessError):
    """A fake raised while answering a request, or the server was misused."""


class MockError(HarnessError):
    """The mock was programmed or used wrongly; raised where the mistake is made."""


class UnknownRpcError(MockError, AttributeError):
    """The service has no RPC of that name (an AttributeError too, as for a real stub)."""


class MockVerificationError(HarnessError, AssertionError):
    """A ``verify()`` expectation failed; the message shows the calls actually received."""


class TraceAssertionError(HarnessError, AssertionError):
    """A trace does not have the expected shape; the message shows the trace as a tree."""


class ContractError(HarnessError):
    """A contract's ``(kit.v1.may_return)`` option cannot be read as a list of error codes."""


class UndeclaredStatusError(HarnessError, AssertionError):
    """A real service answered a status code its RPC does not declare in its contract."""
