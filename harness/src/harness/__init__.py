"""The kit's pytest plugin and the plain code beneath it: the one import path.

The fixtures (``harness_databases``, ``postgres_server``, ``postgres_databases``,
``clean_databases``, ``harness_services``, ``stack``, ``grpc_mocks``, ``trace_receiver``,
``traces``, ``harness_host``, ``http_fake_server``, ``http_fakes``, ``harness_contract_target``,
``service_stacks``) come with the plugin;
everything a ``conftest.py`` or a test imports is here (``from harness import ...``), and
the repository's own tests import from nowhere else (``harness/tests/test_shape.py``).
Inner modules are the harness's own layout: see harness/README.md for the map.
"""

from __future__ import annotations

import os

# Set before grpc first runs in this process: the harness forks processes (Postgres,
# services) while its own gRPC threads (mocks, the trace receiver, channels) are busy.
# With grpc's fork support on, its fork handlers are then skipped with a log line
# ("fork_posix.cc ... skipping fork() handlers") or run in the child before its exec,
# where a Postgres started mid-call was seen to die of SIGSEGV. The children exec at
# once and never use grpc: fork support is not wanted here.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from harness.backends import Backend, HarnessHost, open_backend, resolve_backend
from harness.config import BackendChoice, ContractTarget, HarnessConfig
from harness.contracts import (
    NEVER_PROMISED,
    ContractMismatch,
    DeclaredStatusCheck,
    ProviderStates,
    Recorded,
    checked_channel,
    declared_codes,
    undeclared_status,
)
from harness.databases import CleanStrategy, Databases, DatabaseSpec, databases_from_templates
from harness.errors import (
    ContractError,
    DatabaseSetupError,
    DockerBackendError,
    HarnessError,
    HttpFakeError,
    ImageError,
    LinkError,
    MockError,
    MockVerificationError,
    PostgresFaultError,
    PostgresNotFoundError,
    PostgresStartError,
    ServiceStartError,
    StackError,
    TraceAssertionError,
    UndeclaredStatusError,
    UnknownRpcError,
    WorkspaceError,
)
from harness.faults import (
    FaultEntry,
    FaultJournal,
    Link,
    LinkStats,
    PostgresControl,
    ServiceControl,
)
from harness.http_fakes import FakeError, HttpFakeServer
from harness.mocks import (
    Abort,
    Behaviour,
    Call,
    GrpcMock,
    GrpcMocks,
    Metadata,
    StreamBehaviour,
    Verification,
)
from harness.postgres import (
    PostgresBinaries,
    PostgresServer,
    find_postgres_binaries,
    reap_stale_servers,
    run_postgres,
)
from harness.service_process import ServiceProcess
from harness.services import ServiceHandle, ServiceSpec, workspace_services
from harness.stacks import (
    BackendSession,
    ReplicaSet,
    ServiceStacks,
    Stack,
    StackRequest,
    StackView,
)
from harness.traces import (
    ClientSpan,
    LogFiles,
    LogRecord,
    LogRecords,
    OtlpForwarder,
    Span,
    Trace,
    TraceReceiver,
    TraceView,
    assert_logs_carry_trace,
    render_trace_html,
    render_trace_list_html,
    traceparent,
)
from harness.workspace import SOURCE_DIGEST_LABEL, Member, Workspace

__all__ = [
    "NEVER_PROMISED",
    "SOURCE_DIGEST_LABEL",
    "Abort",
    "Backend",
    "BackendChoice",
    "BackendSession",
    "Behaviour",
    "Call",
    "CleanStrategy",
    "ClientSpan",
    "ContractError",
    "ContractMismatch",
    "ContractTarget",
    "DatabaseSetupError",
    "DatabaseSpec",
    "Databases",
    "DeclaredStatusCheck",
    "DockerBackendError",
    "FakeError",
    "FaultEntry",
    "FaultJournal",
    "GrpcMock",
    "GrpcMocks",
    "HarnessConfig",
    "HarnessError",
    "HarnessHost",
    "HttpFakeError",
    "HttpFakeServer",
    "ImageError",
    "Link",
    "LinkError",
    "LinkStats",
    "LogFiles",
    "LogRecord",
    "LogRecords",
    "Member",
    "Metadata",
    "MockError",
    "MockVerificationError",
    "OtlpForwarder",
    "PostgresBinaries",
    "PostgresControl",
    "PostgresFaultError",
    "PostgresNotFoundError",
    "PostgresServer",
    "PostgresStartError",
    "ProviderStates",
    "Recorded",
    "ReplicaSet",
    "ServiceControl",
    "ServiceHandle",
    "ServiceProcess",
    "ServiceSpec",
    "ServiceStacks",
    "ServiceStartError",
    "Span",
    "Stack",
    "StackError",
    "StackRequest",
    "StackView",
    "StreamBehaviour",
    "Trace",
    "TraceAssertionError",
    "TraceReceiver",
    "TraceView",
    "UndeclaredStatusError",
    "UnknownRpcError",
    "Verification",
    "Workspace",
    "WorkspaceError",
    "assert_logs_carry_trace",
    "checked_channel",
    "databases_from_templates",
    "declared_codes",
    "find_postgres_binaries",
    "open_backend",
    "reap_stale_servers",
    "render_trace_html",
    "render_trace_list_html",
    "resolve_backend",
    "run_postgres",
    "traceparent",
    "undeclared_status",
    "workspace_services",
]
