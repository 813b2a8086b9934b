"""What the harness must know of a service to boot it, and a handle on a booted one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.workspace import Workspace


@dataclass(frozen=True)
class ServiceSpec:
    """A service as the harness boots it.

    It runs as ``python -m <module>`` (process backend) or from ``image`` (docker
    backend), reads ``<NAME>_*`` settings (``<NAME>_DATABASE_URL``,
    ``<NAME>_GRPC_HOST``, ``<NAME>_GRPC_PORT``), listens on ``grpc_port`` inside a
    container, answers gRPC health checks, and reaches each service it calls at
    the address given by the setting named in ``calls``.
    """

    name: str
    grpc_port: int
    module: str = ""
    image: str = ""
    calls: Mapping[str, str] = field(default_factory=dict)
    database: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    # the generated messages module (e.g. "dummy.v1.dummy_pb2"): what a mock is built from
    proto: str = ""

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"

    @property
    def python_module(self) -> str:
        return self.module or self.name


def workspace_services(root: Path, *, image_tag: str = "local") -> list[ServiceSpec]:
    """The services of a workspace shaped like this kit ([tool.kit.service] members):
    module and database named after the service, image ``kit/<name>:<image_tag>``."""
    return [
        ServiceSpec(
            name=member.name,
            grpc_port=member.grpc_port or 0,
            image=f"kit/{member.name}:{image_tag}",
            calls=dict(member.calls),
            database=member.name,
            proto=f"{member.name}.v1.{member.name}_pb2",
        )
        for member in Workspace.read(root).services()
    ]


class ServiceHandle(Protocol):
    """A booted service: where the tests reach it, and its life."""

    name: str

    @property
    def address(self) -> str:
        """host:port reachable from the test process."""
        ...

    @property
    def running(self) -> bool: ...

    def stop(self) -> None:
        """SIGTERM: drain in-flight calls, exit."""
        ...

    def kill(self) -> None:
        """SIGKILL: the crash a fault test wants."""
        ...

    def start(self) -> None:
        """Start (again, after stop or kill); returns when it serves."""
        ...

    def launch(self) -> None:
        """Start without waiting, so that several services start side by side."""
        ...

    def wait_serving(self) -> None:
        """Wait until a launched service serves; raise with its log tail if it never does."""
        ...

    def log_tail(self, lines: int = 50) -> str: ...
