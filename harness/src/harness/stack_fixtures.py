"""Fixtures of service stacks; re-exported by the plugin module.

@pytest.mark.stack("dummy", mocks=["user"])
async def test_something(stack: StackView) -> None:
    entities = stack.stub("dummy", DummyServiceStub)
    ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
import pytest_asyncio

from harness.browser import browser_client
from harness.config import BackendChoice, HarnessConfig
from harness.databases import Databases, DatabaseSpec, databases_from_templates
from harness.docker import docker_unavailable
from harness.faults.journal import FaultJournal
from harness.faults.postgres import PostgresControl
from harness.faults.proxy import Link
from harness.http_fakes import HttpFakeServer
from harness.postgres import PostgresServer
from harness.services import ServiceSpec
from harness.stack import Backend, Stack, StackError, StackRequest
from harness.traces import TraceReceiver

StubT = TypeVar("StubT")

# Reconnect within ~0.1-1 s of a restarted service, not gRPC's default 1-120 s backoff.
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

STACK_MARKER = (
    "stack(*services, mocks=(), links=()): the services the test needs, booted with the "
    "services they call (unless mocked) by the `stack` fixture; `mocks` are served by "
    "generated gRPC mocks; `links` are (caller, callee) pairs, callee a service or "
    "'postgres', to put a fault proxy between (stack.link(caller, callee))"
)


@pytest.fixture(scope="session")
def harness_services() -> list[ServiceSpec]:
    """Override this to declare the services your stacks may boot.

    Return one :class:`~harness.ServiceSpec` per service (name, port, image, the
    services it calls and the settings that carry their addresses, its database);
    ``harness.workspace_services(root)`` reads them from a workspace shaped like this
    kit. Default: none.
    """
    return []


def resolve_backend(choice: BackendChoice) -> BackendChoice:
    if choice is not BackendChoice.AUTO:
        return choice
    return BackendChoice.DOCKER if docker_unavailable() is None else BackendChoice.PROCESS


@pytest.fixture(scope="session")
def harness_backend_name(harness_config: HarnessConfig) -> BackendChoice:
    """The backend stacks run on this session: docker or process."""
    return resolve_backend(harness_config.backend)


def default_postgres_image() -> str:
    import docker

    client = docker.from_env()
    try:
        for image in ("postgres:16", "kit/postgres:15"):
            try:
                client.images.get(image)
            except docker.errors.NotFound:
                continue
            return image
    finally:
        client.close()
    return "postgres:16"  # missing: the backend says so, with the remedy


@dataclass
class BackendSession:
    """The session's backend, the declared databases on its Postgres, its control for
    fault tests, and the journal of the faults each test injects."""

    backend: Backend
    databases: Databases
    journal: FaultJournal = field(default_factory=FaultJournal)
    stacks: dict[Any, Stack] = field(default_factory=dict)
    postgres: PostgresControl = field(init=False)

    def __post_init__(self) -> None:
        self.postgres = PostgresControl(self.backend.postgres, self.journal)


@pytest.fixture(scope="session")
def harness_stack_backend(
    request: pytest.FixtureRequest,
    harness_backend_name: BackendChoice,
    harness_config: HarnessConfig,
    harness_databases: list[DatabaseSpec],
    tmp_path_factory: pytest.TempPathFactory,
    trace_receiver: TraceReceiver,
) -> Iterator[BackendSession]:
    """The backend of every stack of this session (per xdist worker), closed at its end.

    It asks for the trace receiver so that the receiver outlives the stacks: a service
    flushes its last spans when it stops."""
    with ExitStack() as cleanup:
        backend: Any
        if harness_backend_name is BackendChoice.DOCKER:
            from harness.backends.docker import DockerBackend

            image = harness_config.postgres_image or default_postgres_image()
            backend = DockerBackend(image)
            cleanup.callback(backend.close)
            databases = cleanup.enter_context(
                databases_from_templates(
                    backend.postgres, harness_databases, harness_config.db_reset
                )
            )
        else:
            from harness.backends.process import ProcessBackend

            # the session's local server and databases, shared with tests that use them
            server = request.getfixturevalue("postgres_server")
            assert isinstance(server, PostgresServer)
            databases = request.getfixturevalue("postgres_databases")
            backend = ProcessBackend(server, Path(tmp_path_factory.mktemp("service-logs")))
            cleanup.callback(backend.close)
        session = BackendSession(backend, databases)
        yield session
        for stack in session.stacks.values():
            stack.close()


@dataclass(frozen=True)
class HarnessHost:
    """Where servers of the test process (mocks, HTTP fakes, the trace receiver) listen,
    and the name the stack's services use for that address."""

    bind: str
    advertised: str


@pytest.fixture(scope="session")
def harness_host(harness_backend_name: BackendChoice) -> HarnessHost:
    """On the docker backend the docker bridge, which containers reach as
    ``host.docker.internal``; on the process backend the loopback."""
    if harness_backend_name is BackendChoice.DOCKER:
        import docker

        from harness.backends.docker import HOST_ALIAS, bridge_address

        client = docker.from_env()
        try:
            return HarnessHost(bridge_address(client), HOST_ALIAS)
        finally:
            client.close()
    return HarnessHost("127.0.0.1", "127.0.0.1")


@pytest.fixture(scope="session")
def trace_receiver(harness_host: HarnessHost) -> Iterator[TraceReceiver]:
    """The session's OTLP receiver: every service of every stack exports its spans here
    (at :func:`harness_host`)."""
    with TraceReceiver(harness_host.bind, advertised_host=harness_host.advertised) as receiver:
        yield receiver


@pytest.fixture(scope="session")
def http_fake_server(harness_host: HarnessHost) -> Iterator[HttpFakeServer]:
    """The session's server of HTTP fakes (third-party APIs the services call), where the
    stack's services reach it: mount fakes on it, and point the services' settings at
    ``http_fake_server.url + prefix`` (e.g. in your ``harness_services``)."""
    with HttpFakeServer(harness_host.bind, advertised_host=harness_host.advertised) as server:
        yield server


@pytest.fixture
def http_fakes(http_fake_server: HttpFakeServer) -> Iterator[HttpFakeServer]:
    """The HTTP fake server with this test's recorded requests only; the test fails if a
    fake raised while answering one of them."""
    http_fake_server.reset()
    yield http_fake_server
    http_fake_server.raise_errors()


@pytest.fixture
def traces(trace_receiver: TraceReceiver) -> TraceReceiver:
    """The trace receiver, emptied for this test: ``await traces.trace(trace_id)``."""
    trace_receiver.clear()
    return trace_receiver


def _stack_marker(
    *services: str,
    mocks: Sequence[str] = (),
    links: Sequence[tuple[str, str]] = (),
) -> StackRequest:
    """The signature of ``@pytest.mark.stack``: its arguments are checked by calling this."""
    return StackRequest(
        tuple(services),
        tuple(mocks),
        tuple(tuple(link) for link in links),  # type: ignore[misc]
    )


def stack_request(node: pytest.Item) -> StackRequest:
    marker = node.get_closest_marker("stack")
    if marker is None:
        raise StackError(
            f"{node.nodeid} uses the `stack` fixture without @pytest.mark.stack(...): say "
            "which services it needs, e.g. @pytest.mark.stack('dummy', mocks=['user'])"
        )
    try:
        return _stack_marker(*marker.args, **marker.kwargs)
    except TypeError as error:
        raise StackError(
            f"@pytest.mark.stack takes services, mocks= and links=: {error}. "
            "E.g. @pytest.mark.stack('gateway', mocks=['auth'], links=[('gateway', 'dummy')])"
        ) from None


@dataclass
class StackView:
    """What a test gets: the stack, channels and stubs opened for this test."""

    stack: Stack
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    def address(self, name: str) -> str:
        return self.stack.address(name)

    def url(self, name: str) -> str:
        """``http://host:port`` of a booted service, reachable from the test."""
        return f"http://{self.stack.address(name)}"

    def http(self, name: str, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client on an HTTP service (e.g. the gateway), closed when the test
        ends. Each call is a new browser: its own cookies, kept as a browser keeps them
        on a developer machine (Secure cookies work over http://127.0.0.1; see
        :mod:`harness.browser`). Redirects are not followed: a test looks at each."""
        client = browser_client(self.url(name), **kwargs)
        self._clients.append(client)
        return client

    def channel(self, name: str) -> grpc.aio.Channel:
        """An asyncio channel to a service or mock, closed when the test ends."""
        address = self.stack.address(name)
        channel = self._channels.get(address)
        if channel is None:
            # Own subchannels: gRPC shares them process-wide by address, and one left in
            # reconnect backoff by an earlier test (after a kill) would fail this one.
            channel = grpc.aio.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1), *RECONNECT_OPTIONS]
            )
            self._channels[address] = channel
        return channel

    def stub(self, name: str, stub_class: Callable[[grpc.aio.Channel], StubT]) -> StubT:
        """A generated stub on :meth:`channel`: ``stub("dummy", DummyServiceStub)`` is typed
        as the asyncio flavour, ``DummyServiceAsyncStub``."""
        return stub_class(self.channel(name))

    def mock(self, name: str) -> Any:
        return self.stack.mock(name)

    def link(self, caller: str, callee: str) -> Link:
        """The fault link from ``caller`` to ``callee`` (a service, or ``"postgres"``),
        asked for with ``@pytest.mark.stack(..., links=[(caller, callee)])``; restored
        before each test."""
        return self.stack.link(caller, callee)

    @property
    def postgres(self) -> PostgresControl:
        """The stack's Postgres, to stop, kill and start again (the harness starts it again
        after the test if it is left down)."""
        return self.stack.postgres

    def stop(self, name: str) -> None:
        self.stack.stop(name)

    def kill(self, name: str) -> None:
        self.stack.kill(name)

    def start(self, name: str) -> None:
        self.stack.start(name)

    def restart(self, name: str) -> None:
        self.stack.restart(name)

    def logs(self, name: str, lines: int = 50) -> str:
        return self.stack.logs(name, lines)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()


_STACK_KEY = pytest.StashKey[Stack]()


@pytest_asyncio.fixture
async def stack(
    request: pytest.FixtureRequest,
    harness_stack_backend: BackendSession,
    harness_services: list[ServiceSpec],
    trace_receiver: TraceReceiver,
) -> AsyncIterator[StackView]:
    """The stack the test's ``@pytest.mark.stack(...)`` asks for, clean: booted once per
    session, its databases reset, its mocks reset and stopped services started again."""
    wanted = stack_request(request.node)
    session = harness_stack_backend
    booted = session.stacks.get(wanted.key)
    session.postgres.heal()  # a Postgres left down by another stack's test, or a failed heal
    if booted is None:
        booted = Stack.boot(
            session.backend,
            harness_services,
            wanted,
            extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": trace_receiver.endpoint},
            journal=session.journal,
            postgres=session.postgres,
        )
        session.stacks[wanted.key] = booted
        trace_receiver.clear()  # start-up spans (migrations) belong to no test
    booted.heal()  # after a boot too: link stats count from this test on
    session.databases.clean()
    session.journal.clear()
    trace_receiver.clear()
    request.node.stash[_STACK_KEY] = booted
    request.node.stash[_RECEIVER_KEY] = trace_receiver
    view = StackView(booted)
    yield view
    await view.aclose()
    # Postgres is shared with tests that use no stack: it must not stay down after this one.
    session.postgres.heal()


_RECEIVER_KEY = pytest.StashKey[TraceReceiver]()


def fault_report(booted: Stack) -> str:
    """The faults in force when the test failed, then every fault it injected, in order."""
    active = [f"  {target}: {', '.join(faults)}" for target, faults in booted.faults.items()] or [
        "  none"
    ]
    history = booted.journal.render() or "none"
    indented = "\n".join(f"  {line}" for line in history.splitlines())
    return "\n".join(["in force at the failure:", *active, "injected:", indented])


def stack_diagnostics(item: pytest.Item) -> Mapping[str, str]:
    """What a failed test's report carries: the log tails of its stack's services and
    the traces its calls left, as trees."""
    sections: dict[str, str] = {}
    booted = item.stash.get(_STACK_KEY, None)
    if booted is not None and (booted.faults or booted.journal.entries):
        sections["faults of this test"] = fault_report(booted)
    if booted is not None:
        for name, handle in booted.handles.items():
            sections[f"service {name} (last 40 log lines)"] = handle.log_tail(40)
        for name, endpoint in booted.mocks.items():
            calls = endpoint.mock.all_calls()
            sections[f"mock {name} ({len(calls)} calls)"] = "\n".join(
                f"{call.rpc}({str(call.request).strip()!r})" for call in calls
            )
    receiver = item.stash.get(_RECEIVER_KEY, None)
    if receiver is not None:
        try:
            # the services send spans in batches: wait until they are all in (bounded)
            spans = receiver.trace_sync(None, settle=0.3, timeout=2.0)
        except AssertionError:  # nothing arrived at all
            spans = receiver.snapshot()
        if spans.spans:
            sections["traces of this test"] = spans.render()
    return sections
