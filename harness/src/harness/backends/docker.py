"""The ``docker`` backend: services and Postgres in containers (testcontainers).

One Postgres container per session (per xdist worker), one network per stack;
every port published on 127.0.0.1 only; every container and network labelled with
the owning process, so that a later run reaps what a killed run left (Ryuk, the
testcontainers reaper, is an image that may not be pullable: it is not used).
Containers reach what runs in the test process (mocks, the trace receiver) at
``host.docker.internal``, mapped to the docker0 bridge address the harness binds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from ipaddress import IPv4Network
from typing import NoReturn

import docker
import grpc
import httpx
from docker.errors import NotFound
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from harness.backends.containers import (
    HOST_ALIAS,
    START_TIMEOUT,
    bridge_address,
    container_status,
    current_image,
    labels,
    publish_on_loopback,
    published_port,
    reap_stale_resources,
    require_image,
)
from harness.backends.docker_postgres import DockerPostgres
from harness.backends.subnets import DEFAULT_RANGE, create_network
from harness.errors import DockerBackendError
from harness.services import ServiceSpec

__all__ = [
    "DockerBackend",
    "DockerService",
]


# Docker's way to switch an image's HEALTHCHECK off for one container.
NO_HEALTHCHECK = {"test": ["NONE"]}
# The readiness probe's channel connects again every 50-250 ms instead of after gRPC's
# default backoff (1 s, then longer): docker-proxy accepts on the published port before
# the service listens, so the first attempts fail, and each cost up to a second more.
READINESS_RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
)


class DockerService:
    """A service container on a stack's network, published on a random loopback port."""

    def __init__(
        self,
        spec: ServiceSpec,
        env: Mapping[str, str],
        network: Network,
        bridge: str,
        image: str | None = None,
        name: str = "",
    ) -> None:
        """``image``: what to run, by default ``spec.image`` (an image id when another
        image of the checkout's sources stands in for the spec's tag); ``name``: this
        replica's instance name (default: the service's)."""
        self.name = name or spec.name
        self._spec = spec
        self._container = (
            DockerContainer(image or spec.image)
            .with_envs(
                **{
                    **env,
                    spec.host_setting: "0.0.0.0",  # noqa: S104 - inside the container
                    spec.port_setting: str(spec.port),
                }
            )
            .with_network(network)
            .with_network_aliases(spec.name)  # every replica: DNS answers with them all
            .with_name(f"harness-{self.name}-{uuid.uuid4().hex[:8]}")
            .with_kwargs(
                labels=labels(),
                extra_hosts={HOST_ALIAS: "host-gateway"},
                # The image's HEALTHCHECK starts a Python process every few seconds in
                # every container; the harness checks health itself from outside.
                healthcheck=NO_HEALTHCHECK,
            )
        )
        publish_on_loopback(self._container, spec.port)
        self._port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return container_status(self._container) == "running"

    def start(self) -> None:
        self.launch()
        self.wait_serving()

    def launch(self) -> None:
        if self._container._container is None:
            self._container.start()
        else:
            self._container.get_wrapped_container().start()

    def wait_serving(self) -> None:
        self._port = published_port(self._container, self._spec.port)
        if self._spec.is_http:
            self._wait_until_healthy(START_TIMEOUT)
        else:
            self._wait_until_serving(START_TIMEOUT)

    def _wait_until_healthy(self, timeout: float) -> None:
        """An HTTP service serves once ``GET <health_path>`` answers 200."""
        deadline = time.monotonic() + timeout
        problem = "no answer"
        url = f"http://{self.address}{self._spec.health_path}"
        with httpx.Client(timeout=1.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    problem = "the container exited"
                    break
                try:
                    answer = http.get(url)
                except httpx.HTTPError as error:
                    problem = f"{type(error).__name__}: {error}"
                    time.sleep(0.05)  # the server is still starting: do not spin
                    continue
                if answer.status_code == 200:
                    return
                problem = f"GET {self._spec.health_path} answered {answer.status_code}"
                time.sleep(0.05)
        self._not_serving(timeout, problem)

    def _not_serving(self, timeout: float, problem: str) -> NoReturn:
        raise DockerBackendError(
            f"{self.name} ({self._spec.image}) did not serve within {timeout}s: {problem}.\n"
            f"Last log lines:\n{self.log_tail(30)}"
        )

    def _wait_until_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        problem = "no answer"
        with grpc.insecure_channel(self.address, options=READINESS_RECONNECT_OPTIONS) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if not self.running:
                    problem = "the container exited"
                    break
                try:
                    answer = health.Check(
                        health_pb2.HealthCheckRequest(), timeout=1.0, wait_for_ready=True
                    )
                except grpc.RpcError as error:
                    problem = str(error.code())
                    continue
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                problem = "NOT_SERVING"
        self._not_serving(timeout, problem)

    def stop(self) -> None:
        self._container.get_wrapped_container().stop(timeout=15)

    def kill(self) -> None:
        self._container.get_wrapped_container().kill()
        self._container.get_wrapped_container().wait()

    def log_tail(self, lines: int = 50) -> str:
        try:
            out, err = self._container.get_logs()
        except NotFound:
            return ""
        return "\n".join((out + err).decode(errors="replace").splitlines()[-lines:])

    def remove(self) -> None:
        self._container.stop()


class DockerBackend:
    """Services as containers; one Postgres container for the session."""

    name = "docker"

    def __init__(
        self,
        postgres_image: str,
        subnets: IPv4Network = DEFAULT_RANGE,
        *,
        images_command: str = "kit-images build",
    ) -> None:
        # Ryuk would be pulled from a registry: the harness reaps by its own labels.
        testcontainers_config.ryuk_disabled = True
        self._client = docker.from_env()
        reap_stale_resources(self._client)
        require_image(
            self._client,
            postgres_image,
            f"`docker pull {postgres_image}` where a registry is reachable; without one, "
            "`kit-images base` builds kit/postgres:15 from Debian packages "
            "(--harness-postgres-image=kit/postgres:15)",
        )
        self.images_command = images_command
        self.advertised_host = HOST_ALIAS
        self.bridge = bridge_address(self._client)
        self.bind_host = self.bridge
        self.postgres = DockerPostgres(postgres_image)
        self.postgres.start()
        self._subnets = subnets
        self._networks: list[Network] = []
        self._services: list[DockerService] = []

    def database_url(self, database: str, via: str | None = None) -> str:
        return self.postgres.service_dsn(database, via)

    def service_address(self, spec: ServiceSpec, handle: object) -> str:
        """How a service reaches another: by its alias on the stack's network, which
        every replica of it carries (Docker's DNS answers with each one's address)."""
        return f"{spec.name}:{spec.port}"

    def network(self) -> Network:
        """A new network for a stack, with Postgres on it."""
        network = create_network(self._subnets, labels())
        self._networks.append(network)
        self.postgres.connect(network)
        return network

    def launch_service(
        self,
        spec: ServiceSpec,
        env: Mapping[str, str],
        network: Network | None,
        *,
        instance: str = "",
    ) -> DockerService:
        """Start a service container without waiting for it (``handle.wait_serving()``)."""
        assert network is not None, "docker services run on a stack's network"
        image = require_image(
            self._client,
            spec.image,
            f"build the service images: `{self.images_command}` in the project",
        )
        image = current_image(self._client, spec, image, self.images_command)
        handle = DockerService(spec, env, network, self.bridge, image=str(image.id), name=instance)
        self._services.append(handle)
        handle.launch()
        return handle

    def close(self) -> None:
        for handle in reversed(self._services):
            handle.remove()
        self._services.clear()
        self.postgres.stop()
        for network in self._networks:
            network.remove()
        self._networks.clear()
        self._client.close()
