"""What a stack needs of a backend: :class:`Backend`, which the process and docker backends are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from harness.faults.postgres_control import ControllablePostgres
from harness.services import ServiceHandle, ServiceSpec

__all__ = ["Backend"]


class Backend(Protocol):
    name: str
    # Where servers of the test process (mocks, the trace receiver) bind, and the name
    # the services use for that address.
    bind_host: str
    advertised_host: str

    @property
    def postgres(self) -> ControllablePostgres:
        """The session's Postgres, which fault tests stop, kill and start again."""
        ...

    def database_url(self, database: str, via: str | None = None) -> str:
        """The DSN a service uses for ``database`` (at ``via``, host:port, when given:
        a link in front of the server)."""
        ...

    def service_address(self, spec: ServiceSpec, handle: Any) -> str: ...

    def network(self) -> Any: ...

    def launch_service(
        self, spec: ServiceSpec, env: Mapping[str, str], network: Any, *, instance: str = ""
    ) -> ServiceHandle:
        """Start a service; the handle's ``wait_serving()`` waits until it serves.
        ``instance`` names this replica (its handle, log, container; default: the
        service's name); replicas of a service share its address on the network."""
        ...
