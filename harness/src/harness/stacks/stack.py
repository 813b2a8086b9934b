"""A stack: some services booted with what they need, on one backend.

Asking for a service brings the services it calls (``ServiceSpec.calls``) unless a
mock stands in for one; the databases of the booted services live on the
session's Postgres. A stack is booted once per session for each distinct request
and cleaned before every test: databases reset, mocks reset, services that a
fault test stopped or killed started again.
"""

from __future__ import annotations

import functools
import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import Backend
from harness.errors import StackError
from harness.faults.journal import FaultJournal
from harness.faults.links import POSTGRES, check_links, link_name
from harness.faults.postgres_control import PostgresControl
from harness.faults.proxy import Link
from harness.faults.service_control import ServiceControl
from harness.mocks import GrpcMock
from harness.services import ServiceHandle, ServiceSpec
from harness.stacks.replicas import (
    ReplicaSet,
    check_replicas,
    instance_env,
    instance_name,
)
from harness.stacks.request import StackRequest, boot_waves

__all__ = [
    "MockEndpoint",
    "Stack",
    "serve_mock",
]


@dataclass
class MockEndpoint:
    """A generated mock serving for a stack: where tests and services reach it."""

    mock: GrpcMock[Any]
    address: str  # from the test process
    service_address: str  # from the services (a container names the host differently)


def serve_mock(spec: ServiceSpec, backend: Backend) -> MockEndpoint:
    """A generated mock of ``spec``'s service, serving where the backend's services reach it."""
    if not spec.proto_module:
        raise StackError(
            f"{spec.name} has no proto module (ServiceSpec.proto): it cannot be mocked"
        )
    module = importlib.import_module(spec.proto_module)
    services = list(module.DESCRIPTOR.services_by_name.values())
    if len(services) != 1:
        raise StackError(f"{spec.proto_module} defines {len(services)} services; a mock needs one")
    mock: GrpcMock[Any] = GrpcMock(services[0])
    mock.start(backend.bind_host)
    return MockEndpoint(
        mock, f"{backend.bind_host}:{mock.port}", f"{backend.advertised_host}:{mock.port}"
    )


@dataclass
class Stack:
    """Booted services of one request on one backend. Plain code: usable without pytest."""

    backend: Backend
    request: StackRequest
    postgres: PostgresControl
    journal: FaultJournal = field(default_factory=FaultJournal)
    handles: dict[str, ServiceHandle] = field(default_factory=dict)
    mocks: dict[str, MockEndpoint] = field(default_factory=dict)
    links: dict[tuple[str, str], Link] = field(default_factory=dict)
    boot_seconds: float = 0.0

    @classmethod
    def boot(
        cls,
        backend: Backend,
        specs: Sequence[ServiceSpec],
        request: StackRequest,
        *,
        extra_env: Mapping[str, str] | None = None,
        journal: FaultJournal | None = None,
        postgres: PostgresControl | None = None,
        network: Any = None,
    ) -> Stack:
        """Boot the request's services. ``journal`` records the faults injected (one per
        session, shared by its stacks); ``postgres`` controls the backend's Postgres (one
        per session too, so that every stack sees it stopped when one test stops it);
        ``network`` is one ``backend.network()`` made beforehand (default: a new one). On
        the docker backend, joining Postgres to a network cuts the connections made to it
        from this machine: a caller that must keep one across the boot makes it after."""
        started = time.monotonic()
        by_name = {spec.name: spec for spec in specs}
        waves, to_mock = boot_waves(by_name, request)
        booted = [spec.name for wave in waves for spec in wave]
        check_links(by_name, booted, request.links)
        check_replicas(by_name, booted, request.replicas, request.links)
        journal = journal or FaultJournal()
        stack = cls(
            backend, request, postgres or PostgresControl(backend.postgres, journal), journal
        )
        network = backend.network() if network is None else network
        addresses: dict[str, str] = {}
        try:
            for spec in to_mock:
                endpoint = serve_mock(spec, backend)
                stack.mocks[spec.name] = endpoint
                addresses[spec.name] = endpoint.service_address
            for wave in waves:
                launched = []
                for spec in wave:
                    env = {**(extra_env or {}), **spec.env}
                    if spec.database is not None:
                        via = stack._link_to_postgres(spec.name)
                        env[f"{spec.env_prefix}DATABASE_URL"] = backend.database_url(
                            spec.database, via
                        )
                    for callee, setting in spec.calls.items():
                        env[setting] = stack._link_to(spec.name, callee) or addresses[callee]
                    handle = stack._launch(spec, env, network)
                    stack.handles[spec.name] = handle
                    launched.append((spec, handle))
                for spec, handle in launched:  # they start side by side
                    handle.wait_serving()
                    addresses[spec.name] = backend.service_address(spec, handle)
        except BaseException:
            stack.close()
            raise
        stack.boot_seconds = time.monotonic() - started
        return stack

    def _launch(self, spec: ServiceSpec, env: Mapping[str, str], network: Any) -> ServiceHandle:
        """Launch the replicas of ``spec`` side by side, each an instance of its own."""
        count = self.request.replica_count(spec.name)
        replicas = []
        for index in range(count):
            instance = instance_name(spec.name, index, count)
            replicas.append(
                self.backend.launch_service(
                    spec, instance_env(env, instance), network, instance=instance
                )
            )
        if count == 1:
            return replicas[0]
        return ReplicaSet(spec.name, replicas, is_http=spec.is_http)

    def _open_link(self, caller: str, callee: str, upstream: Callable[[], str]) -> str | None:
        """Start the requested link from caller to callee; its address for the caller
        (None: no link asked for)."""
        if (caller, callee) not in self.request.links:
            return None
        link = Link(
            upstream,
            name=link_name(caller, callee),
            bind_host=self.backend.bind_host,
            advertised_host=self.backend.advertised_host,
            journal=self.journal,
        ).start()
        self.links[(caller, callee)] = link
        return link.advertised_address

    def _link_to(self, caller: str, callee: str) -> str | None:
        # Asked at each connection: a container restarted on another published port.
        return self._open_link(caller, callee, functools.partial(self.address, callee))

    def _link_to_postgres(self, caller: str) -> str | None:
        # Asked at each connection: a container's port moves when it joins a network.
        postgres = self.backend.postgres
        return self._open_link(caller, POSTGRES, lambda: postgres.address)

    def link(self, caller: str, callee: str) -> Link:
        """The fault link from ``caller`` to ``callee`` (a service, or ``"postgres"``)."""
        try:
            return self.links[(caller, callee)]
        except KeyError:
            asked = ", ".join(f"({a!r}, {b!r})" for a, b in self.links) or "none"
            raise StackError(
                f"no link {link_name(caller, callee)} in this stack (links: {asked}); ask for "
                f"it with @pytest.mark.stack(..., links=[({caller!r}, {callee!r})])"
            ) from None

    def address(self, name: str, replica: int | None = None) -> str:
        """host:port of a booted service (or a mock), reachable from the test; of a
        service of several replicas, a gRPC target naming them all
        (``ipv4:127.0.0.1:p1,127.0.0.1:p2``), or with ``replica`` that one's host:port."""
        if name in self.handles:
            return self.handle(name, replica).address
        if name in self.mocks:
            if replica not in (None, 0):
                raise StackError(f"{name!r} is a mock: it has no replica {replica}")
            return self.mocks[name].address
        raise StackError(f"{name!r} is not in this stack: {sorted([*self.handles, *self.mocks])}")

    def handle(self, name: str, replica: int | None = None) -> ServiceHandle:
        """A booted service (a :class:`~harness.stacks.replicas.ReplicaSet` when it runs
        several replicas), or with ``replica`` the replica of that index."""
        try:
            handle = self.handles[name]
        except KeyError:
            raise StackError(f"{name!r} is not a booted service of this stack") from None
        if replica is None:
            return handle
        replicas = handle.replicas if isinstance(handle, ReplicaSet) else (handle,)
        if (
            isinstance(replica, bool)
            or not isinstance(replica, int)
            or not (0 <= replica < len(replicas))
        ):
            raise StackError(
                f"{name} runs {len(replicas)} replica(s): replica={replica!r} is not one of "
                f"0..{len(replicas) - 1} (ask for more with "
                f"@pytest.mark.stack(..., replicas={{{name!r}: 2}}))"
            )
        return replicas[replica]

    def instances(self) -> dict[str, ServiceHandle]:
        """Every booted process or container by its instance name (``user``, or
        ``auth-0``, ``auth-1`` for a service of several replicas), in boot order."""
        found: dict[str, ServiceHandle] = {}
        for handle in self.handles.values():
            for one in handle.replicas if isinstance(handle, ReplicaSet) else (handle,):
                found[one.name] = one
        return found

    def mock(self, name: str) -> GrpcMock[Any]:
        try:
            return self.mocks[name].mock
        except KeyError:
            raise StackError(f"{name!r} is not mocked in this stack") from None

    def service(self, name: str, replica: int | None = None) -> ServiceControl:
        """A booted service's control: stop, kill, start, restart, and async variants;
        of every replica, or with ``replica`` of that one."""
        return ServiceControl(self.handle(name, replica), self.journal)

    def stop(self, name: str, replica: int | None = None) -> None:
        self.service(name, replica).stop()

    def kill(self, name: str, replica: int | None = None) -> None:
        self.service(name, replica).kill()

    def start(self, name: str, replica: int | None = None) -> None:
        self.service(name, replica).start()

    def restart(self, name: str, replica: int | None = None) -> None:
        self.service(name, replica).restart()

    def logs(self, name: str, lines: int = 50, replica: int | None = None) -> str:
        """The last log lines of a service (of each replica, headed by its name), or of
        one replica."""
        return self.handle(name, replica).log_tail(lines)

    @property
    def faults(self) -> dict[str, tuple[str, ...]]:
        """The faults in force, by target (``"postgres"``, ``"dummy -> user"``), in words."""
        active = {"postgres": self.postgres.faults}
        active.update({link.name: link.faults for link in self.links.values()})
        active.update(
            {name: ("down",) for name, handle in self.instances().items() if not handle.running}
        )
        return {target: faults for target, faults in active.items() if faults}

    def heal(self) -> None:
        """Restore every link and count its traffic from zero, start again whatever a test
        stopped or killed (Postgres first: the services need it), reset the mocks."""
        for link in self.links.values():
            link.restore()
            link.clear_stats()
        self.postgres.heal()
        for handle in self.handles.values():
            if not handle.running:
                handle.start()
        for endpoint in self.mocks.values():
            endpoint.mock.reset()

    def close(self) -> None:
        for handle in reversed(list(self.handles.values())):
            if handle.running:
                handle.stop()
        for endpoint in self.mocks.values():
            endpoint.mock.close()
        for link in self.links.values():
            link.close()
