"""What the harness must know of a service to boot it, and a handle on a booted one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Protocol

from harness.workspace import Workspace

__all__ = ["ServiceHandle", "ServiceSpec", "workspace_services"]


def _proto_module_name(service: str, proto: object) -> str:
    """The dotted name of a generated ``_pb2`` module given as itself or by name; a
    ValueError naming the field for anything else."""
    where = f"ServiceSpec({service!r}).proto"
    if isinstance(proto, ModuleType):
        if not hasattr(proto, "DESCRIPTOR"):
            raise ValueError(
                f"{where}: {proto.__name__} is not a generated messages module (no "
                "DESCRIPTOR); give the *_pb2 module, not *_pb2_grpc or a package"
            )
        return proto.__name__
    if not isinstance(proto, str):
        raise ValueError(
            f"{where}: expected the generated *_pb2 module or its dotted name, "
            f"not {type(proto).__name__} {proto!r}"
        )
    if proto and not all(part.isidentifier() for part in proto.split(".")):
        raise ValueError(
            f"{where}: {proto!r} is not a dotted module name (e.g. 'dummy.v1.dummy_pb2')"
        )
    if proto.endswith("_pb2_grpc"):
        raise ValueError(
            f"{where}: {proto!r} is the stubs module; give the messages module "
            f"{proto.removesuffix('_grpc')!r}"
        )
    return proto


@dataclass(frozen=True)
class ServiceSpec:
    """A service as the harness boots it.

    It runs as ``python -m <module>`` (process backend; ``module`` defaults to
    ``name``) or from ``image`` (docker backend), reads ``<NAME>_*`` settings, and
    reaches each service it calls at the address given by the setting named in
    ``calls``. Either a gRPC service: it reads ``<NAME>_GRPC_HOST`` /
    ``<NAME>_GRPC_PORT``, listens on ``grpc_port`` inside a container and answers gRPC
    health checks; or an HTTP service (``http_port``, e.g. the gateway): it reads
    ``<NAME>_HOST`` / ``<NAME>_PORT`` and answers ``GET <health_path>`` with 200 once it
    serves. On the process backend both announce their port in a JSON "serving" log
    line.
    """

    name: str
    grpc_port: int = 0
    module: str = ""
    image: str = ""
    calls: Mapping[str, str] = field(default_factory=dict)
    database: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    # The generated messages module, what a mock is built from: the module itself or its
    # dotted name (e.g. "dummy.v1.dummy_pb2"); kept as the name. Empty: not mockable.
    proto: str | ModuleType = ""
    http_port: int = 0
    health_path: str = "/healthz"
    # The code the image must hold (Workspace.source_digest): the docker backend refuses
    # an image labelled with another digest. Empty: not checked.
    source_digest: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "proto", _proto_module_name(self.name, self.proto))
        if bool(self.grpc_port) == bool(self.http_port):
            raise ValueError(
                f"service {self.name!r}: give exactly one of grpc_port and http_port "
                f"(got grpc_port={self.grpc_port}, http_port={self.http_port})"
            )

    @property
    def proto_module(self) -> str:
        """``proto`` as the dotted name of the module ("" when none)."""
        return self.proto if isinstance(self.proto, str) else self.proto.__name__

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"

    @property
    def is_http(self) -> bool:
        return bool(self.http_port)

    @property
    def port(self) -> int:
        """The port it listens on inside a container."""
        return self.http_port or self.grpc_port

    @property
    def host_setting(self) -> str:
        """The setting that gives the interface it binds."""
        return f"{self.env_prefix}HOST" if self.is_http else f"{self.env_prefix}GRPC_HOST"

    @property
    def port_setting(self) -> str:
        """The setting that gives the port it binds (0: any free port)."""
        return f"{self.env_prefix}PORT" if self.is_http else f"{self.env_prefix}GRPC_PORT"

    @property
    def python_module(self) -> str:
        return self.module or self.name


def workspace_services(root: Path, *, image_tag: str = "local") -> list[ServiceSpec]:
    """The services of a project (harness.workspace: a uv workspace shaped like this kit,
    or a plain project's [tool.kit.services.<name>]): database named after the service,
    proto ``<name>.v1.<name>_pb2``, image ``<repository>/<name>:<image_tag>``
    ([tool.kit] image-repository, default kit) as ``kit-images build`` tags it.
    HTTP services (``http-port``, the gateway) have no database and no proto to mock.
    Each logs every call it answers (``<NAME>_ACCESS_LOG=true``; off by default in the
    services, where only errors and slow calls are logged), so failure reports show them."""
    workspace = Workspace.read(root)
    specs = []
    for member in [*workspace.services(), *workspace.http_services()]:
        is_grpc = member.grpc_port is not None
        specs.append(
            ServiceSpec(
                name=member.name,
                grpc_port=member.grpc_port or 0,
                http_port=member.http_port or 0,
                module=member.module,
                image=f"{workspace.image_repository}/{member.name}:{image_tag}",
                calls=dict(member.calls),
                database=member.name if is_grpc else None,
                proto=f"{member.name}.v1.{member.name}_pb2" if is_grpc else "",
                source_digest=workspace.source_digest(member.name),
                env={f"{member.name.upper()}_ACCESS_LOG": "true"},
            )
        )
    return specs


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
