"""The kit's pytest plugin and the plain code beneath it.

The fixtures (``harness_databases``, ``postgres_server``, ``postgres_databases``,
``clean_databases``, ``harness_services``, ``stack``, ``grpc_mocks``, ``trace_receiver``,
``traces``, ``harness_host``, ``http_fake_server``, ``http_fakes``) come with the plugin;
what a ``conftest.py``, a test or a script imports is here.
"""

from __future__ import annotations

from harness.backends import Backend, HarnessHost, open_backend
from harness.config import BackendChoice, HarnessConfig
from harness.databases import CleanStrategy, Databases, DatabaseSpec, databases_from_templates
from harness.errors import (
    DatabaseSetupError,
    DockerBackendError,
    HarnessError,
    HttpFakeError,
    LinkError,
    MockError,
    MockVerificationError,
    PostgresFaultError,
    PostgresNotFoundError,
    PostgresStartError,
    ServiceStartError,
    StackError,
    TraceAssertionError,
    UnknownRpcError,
    WorkspaceError,
)
from harness.faults import FaultEntry, FaultJournal, Link, LinkStats, PostgresControl
from harness.http_fakes import HttpFakeServer
from harness.mocks import Abort, Call, GrpcMock, GrpcMocks
from harness.postgres import (
    PostgresBinaries,
    PostgresServer,
    find_postgres_binaries,
    reap_stale_servers,
    run_postgres,
)
from harness.service_process import ServiceProcess
from harness.services import ServiceSpec, workspace_services
from harness.stacks import Stack, StackRequest, StackView
from harness.traces import Span, Trace, TraceReceiver

__all__ = [
    "Abort",
    "Backend",
    "BackendChoice",
    "Call",
    "CleanStrategy",
    "DatabaseSetupError",
    "DatabaseSpec",
    "Databases",
    "DockerBackendError",
    "FaultEntry",
    "FaultJournal",
    "GrpcMock",
    "GrpcMocks",
    "HarnessConfig",
    "HarnessError",
    "HarnessHost",
    "HttpFakeError",
    "HttpFakeServer",
    "Link",
    "LinkError",
    "LinkStats",
    "MockError",
    "MockVerificationError",
    "PostgresBinaries",
    "PostgresControl",
    "PostgresFaultError",
    "PostgresNotFoundError",
    "PostgresServer",
    "PostgresStartError",
    "ServiceProcess",
    "ServiceSpec",
    "ServiceStartError",
    "Span",
    "Stack",
    "StackError",
    "StackRequest",
    "StackView",
    "Trace",
    "TraceAssertionError",
    "TraceReceiver",
    "UnknownRpcError",
    "WorkspaceError",
    "databases_from_templates",
    "find_postgres_binaries",
    "open_backend",
    "reap_stale_servers",
    "run_postgres",
    "workspace_services",
]
