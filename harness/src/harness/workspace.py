"""The services of a project, read from its pyproject files: a uv workspace shaped like
this kit, or a plain project of its own.

In a **uv workspace** (``[tool.uv.workspace]`` in the root pyproject.toml), a member is a
service when its pyproject.toml has a ``[tool.kit.service]`` table:

    [tool.kit.service]
    grpc-port = 50053                           # the port it listens on in containers
    calls = { user = "DUMMY_USER_ADDRESS" }     # services it calls, and the setting
                                                # that gives it each one's address

A **plain project** (one pyproject.toml, its code under ``src/``) names its services in
``[tool.kit.services.<name>]`` tables of the same keys, plus ``module`` (what ``python -m``
runs; default the name); every image of it holds all of ``src/``:

    [tool.kit]
    image-repository = "notes"                  # images <repository>/<service> (default kit)
    [tool.kit.services.notes]
    grpc-port = 50051
    calls = { tags = "NOTES_TAGS_ADDRESS" }

harness.images builds Dockerfiles and images from this graph; scripts/dev.py and the
harness's stacks start services in the order it gives.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import WorkspaceError

__all__ = ["SOURCE_DIGEST_LABEL", "Member", "Workspace"]

# The image label that names the sources an image was built from (Workspace.source_digest):
# kit-images (harness.images) sets it, the docker backend refuses an image whose label disagrees
# with the checkout, rather than test old code.
SOURCE_DIGEST_LABEL = "kit.source-digest"


@dataclass(frozen=True)
class Member:
    """A workspace member: its package name, folder, and workspace dependencies."""

    name: str
    path: Path  # relative to the workspace root
    dependencies: tuple[str, ...]
    grpc_port: int | None  # set for gRPC services (pyproject [tool.kit.service])
    # services it calls: their name -> the setting that gives their address
    calls: dict[str, str] = field(default_factory=dict)
    http_port: int | None = None  # set for HTTP services (the gateway)
    module: str = ""  # what `python -m` runs; default: the name

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"

    @property
    def python_module(self) -> str:
        return self.module or self.name

    @property
    def dockerfile(self) -> Path:
        """Its Dockerfile, relative to the root: in its folder (a workspace member), or
        ``docker/<name>.Dockerfile`` (a service of a plain project, which shares ``.``)."""
        if self.path == Path("."):
            return Path("docker") / f"{self.name}.Dockerfile"
        return self.path / "Dockerfile"


@dataclass(frozen=True)
class Workspace:
    root: Path
    members: dict[str, Member]
    # images are named <image_repository>/<service> ([tool.kit] image-repository)
    image_repository: str = "kit"
    # the project's own runtime dependencies (a plain project's [project] dependencies)
    requirements: tuple[str, ...] = ()
    plain: bool = False  # a plain project, not a uv workspace

    @property
    def locked(self) -> bool:
        """Whether uv.lock pins its dependencies (else the images take the versions the
        running environment has installed)."""
        return (self.root / "uv.lock").exists()

    @classmethod
    def read(cls, root: Path) -> Workspace:
        pyproject = root / "pyproject.toml"
        if not pyproject.exists():
            raise WorkspaceError(f"{root} has no pyproject.toml: not a project")
        try:
            config = tomllib.loads(pyproject.read_text())
        except tomllib.TOMLDecodeError as error:
            raise WorkspaceError(f"{pyproject}: {error}") from None
        kit = config.get("tool", {}).get("kit", {})
        repository = str(kit.get("image-repository", "kit"))
        if "workspace" not in config.get("tool", {}).get("uv", {}):
            return cls._read_plain(root, config, repository)
        patterns = config["tool"]["uv"]["workspace"]["members"]
        folders = sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_dir()})
        projects = {}
        for folder in folders:
            pyproject = folder / "pyproject.toml"
            if pyproject.exists():
                projects[folder] = tomllib.loads(pyproject.read_text())
        names = {project["project"]["name"] for project in projects.values()}
        members = {}
        for folder, project in projects.items():
            name = project["project"]["name"]
            requirements = project["project"].get("dependencies", [])
            dependencies = tuple(
                sorted(_bare_name(r) for r in requirements if _bare_name(r) in names)
            )
            service = project.get("tool", {}).get("kit", {}).get("service", {})
            members[name] = Member(
                name,
                folder.relative_to(root),
                dependencies,
                service.get("grpc-port"),
                dict(service.get("calls", {})),
                service.get("http-port"),
            )
        return cls(root, members, repository)

    @classmethod
    def _read_plain(cls, root: Path, config: dict[str, Any], repository: str) -> Workspace:
        services = config.get("tool", {}).get("kit", {}).get("services", {})
        if not services:
            raise WorkspaceError(
                f"{root / 'pyproject.toml'} declares no services: a uv workspace needs "
                "[tool.uv.workspace], a plain project [tool.kit.services.<name>] tables"
            )
        members = {}
        for name, service in services.items():
            if not isinstance(service, dict) or (
                ("grpc-port" in service) == ("http-port" in service)
            ):
                raise WorkspaceError(
                    f"[tool.kit.services.{name}]: give exactly one of grpc-port and http-port"
                )
            members[name] = Member(
                name,
                Path("."),
                (),
                service.get("grpc-port"),
                dict(service.get("calls", {})),
                service.get("http-port"),
                str(service.get("module", "")),
            )
        requirements = tuple(config.get("project", {}).get("dependencies", []))
        return cls(root, members, repository, requirements, plain=True)

    def requirements_name(self, name: str) -> str:
        """What the third-party requirements and wheelhouse of ``name``'s image are called:
        its own name in a workspace; ``project`` in a plain project, whose services all
        need the same (so their images share the dependency layers)."""
        return "project" if self.plain else name

    def closure(self, name: str) -> list[Member]:
        """``name`` and every member it depends on, dependencies first."""
        ordered: list[Member] = []

        def visit(current: str, path: tuple[str, ...]) -> None:
            if current in path:
                raise WorkspaceError(f"workspace dependency cycle: {' -> '.join((*path, current))}")
            member = self.members[current]
            for dependency in member.dependencies:
                visit(dependency, (*path, current))
            if member not in ordered:
                ordered.append(member)

        visit(name, ())
        return ordered

    def source_digest(self, name: str) -> str:
        """A digest of the code ``name``'s image holds: every file under ``src/`` of the
        member and of the members it depends on (bytecode left out), by path relative to
        the workspace, so two checkouts of the same code agree."""
        digest = hashlib.sha256()
        for path in self._source_paths(name):
            data = path.read_bytes()
            digest.update(f"{path.relative_to(self.root)}\0{len(data)}\0".encode())
            digest.update(data)
        return digest.hexdigest()

    def source_files(self, name: str) -> dict[str, str]:
        """The files ``source_digest`` covers, each path (relative to the workspace) with
        the SHA-256 of its content: what tells which sources changed since a build."""
        return {
            str(path.relative_to(self.root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in self._source_paths(name)
        }

    def _source_paths(self, name: str) -> list[Path]:
        paths = []
        for member in self.closure(name):
            source = self.root / member.path / "src"
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                if "__pycache__" in path.parts or path.suffix == ".pyc":
                    continue
                paths.append(path)
        return paths

    def http_services(self) -> list[Member]:
        """The HTTP services ([tool.kit.service] http-port), e.g. the gateway."""
        return sorted(
            (m for m in self.members.values() if m.http_port is not None), key=lambda m: m.name
        )

    def services(self) -> list[Member]:
        """The gRPC services, each after the services it calls."""
        services = {m.name: m for m in self.members.values() if m.grpc_port is not None}
        ordered: list[Member] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in path:
                raise WorkspaceError(
                    f"services call each other in a cycle: {' -> '.join((*path, name))}"
                )
            if name not in services:
                raise WorkspaceError(
                    f"{path[-1]} calls {name!r}, which is not a service of the workspace"
                )
            for callee in sorted(services[name].calls):
                visit(callee, (*path, name))
            if services[name] not in ordered:
                ordered.append(services[name])

        for name in sorted(services):
            visit(name, ())
        return ordered


def _bare_name(requirement: str) -> str:
    for separator in "<>=!~;[ ":
        requirement = requirement.split(separator, 1)[0]
    return requirement.strip().lower()
