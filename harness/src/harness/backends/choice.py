"""Which backend a session's stacks run on, and opening it (:func:`open_backend`).

``auto`` is docker when a Docker engine answers (asked once per run), else process. The
docker backend is imported only when chosen: without it no Docker library is loaded.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from harness.backends.base import Backend
from harness.backends.subnets import DEFAULT_RANGE
from harness.config import BackendChoice
from harness.databases import CleanStrategy, Databases, DatabaseSpec, databases_from_templates
from harness.postgres import PostgresServer

__all__ = [
    "HarnessHost",
    "default_postgres_image",
    "docker_unavailable",
    "harness_host_for",
    "open_backend",
    "resolve_backend",
]


@functools.cache
def docker_unavailable() -> str | None:
    """None when ``docker info`` answers; otherwise why not, in one line."""
    docker = shutil.which("docker")
    if docker is None:
        return "the docker command is not installed"
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 15 s"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return lines[-1] if lines else f"`docker info` exited with {result.returncode}"
    return None


def resolve_backend(choice: BackendChoice) -> BackendChoice:
    """The backend ``auto`` stands for on this machine; any other choice as it is."""
    if choice is not BackendChoice.AUTO:
        return choice
    return BackendChoice.DOCKER if docker_unavailable() is None else BackendChoice.PROCESS


def default_postgres_image() -> str:
    """The Postgres image the docker backend runs when none is set: the first on this machine."""
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


@dataclass(frozen=True)
class HarnessHost:
    """Where servers of the test process (mocks, HTTP fakes, the trace receiver) listen,
    and the name the stack's services use for that address."""

    bind_host: str
    advertised_host: str


def harness_host_for(choice: BackendChoice) -> HarnessHost:
    """On the docker backend the docker bridge, which containers reach as
    ``host.docker.internal``; on the process backend the loopback."""
    if resolve_backend(choice) is BackendChoice.DOCKER:
        import docker

        from harness.backends.containers import HOST_ALIAS, bridge_address

        client = docker.from_env()
        try:
            return HarnessHost(bridge_address(client), HOST_ALIAS)
        finally:
            client.close()
    return HarnessHost("127.0.0.1", "127.0.0.1")


@contextlib.contextmanager
def open_backend(
    choice: BackendChoice,
    *,
    database_specs: Sequence[DatabaseSpec],
    db_reset: CleanStrategy,
    postgres_image: str = "",
    docker_subnets: IPv4Network = DEFAULT_RANGE,
    images_command: str = "kit-images build",
    local_postgres: Callable[[], tuple[PostgresServer, Databases]],
    log_dir: Callable[[], Path],
) -> Iterator[tuple[Backend, Databases]]:
    """The backend of ``choice`` and the declared databases on its Postgres; closed at the end.

    docker: a Postgres container of ``postgres_image`` (default
    :func:`default_postgres_image`) with the databases migrated on it, each stack's network
    on a /24 of ``docker_subnets`` (default 10.213.0.0/16). process: the local
    server and databases ``local_postgres`` gives (a session shares them with the tests
    that use Postgres without a stack), services logging under ``log_dir()``.
    ``images_command`` builds the project's service images: the docker backend's remedies
    name it.
    """
    backend: Backend
    with contextlib.ExitStack() as cleanup:
        if resolve_backend(choice) is BackendChoice.DOCKER:
            from harness.backends.docker import DockerBackend

            docker_backend = DockerBackend(
                postgres_image or default_postgres_image(),
                docker_subnets,
                images_command=images_command,
            )
            cleanup.callback(docker_backend.close)
            databases = cleanup.enter_context(
                databases_from_templates(docker_backend.postgres, database_specs, db_reset)
            )
            backend = docker_backend
        else:
            from harness.backends.process import ProcessBackend

            server, databases = local_postgres()
            process_backend = ProcessBackend(server, log_dir())
            cleanup.callback(process_backend.close)
            backend = process_backend
        yield backend, databases
