"""The ``docker`` backend: services and Postgres in containers (testcontainers).

One Postgres container per session (per xdist worker), one network per stack;
every port published on 127.0.0.1 only; every container and network labelled with
the owning process, so that a later run reaps what a killed run left (Ryuk, the
testcontainers reaper, is an image that may not be pullable: it is not used).
Containers reach what runs in the test process (mocks, the trace receiver) at
``host.docker.internal``, mapped to the docker0 bridge address the harness binds.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import time
import uuid
from collections.abc import Mapping
from typing import NoReturn

import asyncpg
import docker
import grpc
import httpx
from docker.errors import APIError, NotFound
from docker.models.images import Image
from grpc_health.v1 import health_pb2, health_pb2_grpc
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from harness._loop import BackgroundLoop
from harness.errors import DockerBackendError
from harness.owner import current_owner, owner_gone
from harness.postgres import alter_system
from harness.services import ServiceSpec
from harness.workspace import SOURCE_DIGEST_LABEL

LABEL = "harness"
OWNER_LABEL = "harness.owner"  # the test process (harness.owner.current_owner)
POSTGRES_PASSWORD = "harness"  # noqa: S105 - a throwaway server on loopback, for tests only
HOST_ALIAS = "host.docker.internal"
START_TIMEOUT = 60.0


def labels() -> dict[str, str]:
    return {LABEL: "true", OWNER_LABEL: current_owner()}


def reap_stale_resources(client: docker.DockerClient) -> list[str]:
    """Remove the containers, then the networks, of harness runs whose process is gone."""
    reaped: list[str] = []

    for container in client.containers.list(all=True, filters={"label": LABEL}):
        if owner_gone(container.labels.get(OWNER_LABEL, "")):
            container.remove(force=True, v=True)
            reaped.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": LABEL}):
        if owner_gone(network.attrs.get("Labels", {}).get(OWNER_LABEL, "")):
            try:
                network.remove()
                reaped.append(f"network {network.name}")
            except APIError:
                pass  # still in use by a container of a live run: not stale after all
    return reaped


def bridge_address(client: docker.DockerClient) -> str:
    """The docker0 gateway: an address of this machine that every container can reach
    (as ``host-gateway``). Docker does not always report it: then it is read off the
    bridge interface itself."""
    bridge = client.networks.get("bridge")
    for config in bridge.attrs.get("IPAM", {}).get("Config") or []:
        if config.get("Gateway"):
            return str(config["Gateway"])
    interface = bridge.attrs.get("Options", {}).get("com.docker.network.bridge.name", "docker0")
    return interface_address(interface)


def interface_address(interface: str) -> str:
    """The IPv4 address of a network interface of this machine (SIOCGIFADDR)."""
    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(
                probe.fileno(), siocgifaddr, struct.pack("256s", interface.encode()[:15])
            )
        except OSError as error:
            raise DockerBackendError(
                f"cannot find the address of the docker bridge {interface!r} ({error}); "
                "containers could not reach mocks and the trace receiver"
            ) from None
    return socket.inet_ntoa(packed[20:24])


def require_image(client: docker.DockerClient, image: str, remedy: str) -> Image:
    try:
        return client.images.get(image)
    except NotFound:
        raise DockerBackendError(
            f"image {image} is not on this machine and the harness does not pull. Remedy: {remedy}"
        ) from None


def require_current_image(spec: ServiceSpec, labels: Mapping[str, str] | None) -> None:
    """Refuse an image (of these ``labels``) built from other code than the checkout's: the
    tests would pass or fail on old code. Checked when the spec names its sources and the
    image its own."""
    built_from = (labels or {}).get(SOURCE_DIGEST_LABEL)
    if spec.source_digest and built_from is not None and built_from != spec.source_digest:
        raise DockerBackendError(
            f"image {spec.image} holds other code than this checkout's {spec.name} (and the "
            "members it depends on): it was built before the last change. Remedy: rebuild "
            f"it (`make images`, or `python scripts/images.py build {spec.name}`), or run "
            "on the process backend (--harness-backend=process)."
        )


def publish_on_loopback(container: DockerContainer, port: int) -> None:
    """Publish ``port`` on a free port of 127.0.0.1 only (not on every interface).
    testcontainers' with_bind_ports takes no host address; the docker SDK does."""
    container.ports[f"{port}/tcp"] = ("127.0.0.1", None)  # type: ignore[assignment]


def container_status(container: DockerContainer) -> str:
    """The container's status now (testcontainers' ``status`` is the one at creation)."""
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
    except NotFound:
        return "removed"
    return str(wrapped.status)


def published_port(container: DockerContainer, port: int) -> int:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    bindings = wrapped.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
            return int(binding["HostPort"])
    raise DockerBackendError(f"port {port} of {wrapped.name} is not published")


# The container's first process: it runs the image's entrypoint (initdb on the first start,
# then postgres) as a process group of its own, and starts it again after the harness
# stopped or killed it (the "held" file says so) instead of letting the container exit.
# Why not docker stop / kill / start: the data lives on a tmpfs, which a stopped container
# loses, and the published port would move; this way a fault is what it is on the process
# backend: the server's processes stop or die, the data and the address stay.
_POSTGRES_SUPERVISOR = """
trap 'kill -INT "$pid" 2>/dev/null; wait "$pid"; exit 0' INT TERM
while :; do
  setsid docker-entrypoint.sh "$@" &
  pid=$!
  echo "$pid" > /tmp/harness-postgres.pid
  wait "$pid"
  status=$?
  [ -e /tmp/harness-postgres.held ] || exit "$status"
  while [ -e /tmp/harness-postgres.held ]; do sleep 0.05; done
done
"""
# Hold the server (it is not started again), signal its process group, wait until the
# postmaster is gone (SIGKILL after ~10 s of a shutdown that does not end).
_POSTGRES_SIGNAL = """
touch /tmp/harness-postgres.held
pid=$(cat /tmp/harness-postgres.pid)
kill -"$1" -- -"$pid" || exit 1
tries=0
while kill -0 "$pid" 2>/dev/null; do
  tries=$((tries + 1))
  [ "$tries" -eq 200 ] && kill -KILL -- -"$pid"
  sleep 0.05
done
"""


class DockerPostgres:
    """The session's Postgres container; a :class:`~harness.postgres.PostgresEndpoint`,
    which fault tests stop, kill and start again (:meth:`shut_down`, :meth:`crash`,
    :meth:`start_again`) inside its running container."""

    def __init__(self, image: str, network_alias: str = "postgres") -> None:
        self.alias = network_alias
        self._container = (
            DockerContainer(image)
            .with_env("POSTGRES_PASSWORD", POSTGRES_PASSWORD)
            .with_env("POSTGRES_USER", "postgres")
            # synchronous_commit is set in postgresql.auto.conf once it runs (see start),
            # where a test can change it (PostgresControl.durable); the command line
            # would outrank that.
            .with_command("postgres -c fsync=off -c full_page_writes=off -c max_connections=200")
            .with_tmpfs_mount("/var/lib/postgresql/data")
            .with_kwargs(
                labels=labels(),
                entrypoint=["bash", "-c", _POSTGRES_SUPERVISOR, "harness-postgres"],
            )
        )
        publish_on_loopback(self._container, 5432)
        self._port = 0
        self._major = 0
        self._held = False  # stopped or killed by a fault test
        # asyncpg from synchronous code that may run inside pytest-asyncio's loop
        self._loop = BackgroundLoop("harness-docker-postgres").__enter__()

    @property
    def major(self) -> int:
        return self._major

    @property
    def log_location(self) -> str:
        return f"container {self._container.get_wrapped_container().name}"

    @property
    def address(self) -> str:
        """host:port of the server from this machine (it moves when a stack's network is
        joined)."""
        return f"127.0.0.1:{self._port}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{POSTGRES_PASSWORD}@127.0.0.1:{self._port}/{database}"

    def service_dsn(self, database: str, via: str | None = None) -> str:
        """The DSN services use: over the stack's network, or at ``via`` (host:port of a
        fault link in front of the server)."""
        address = via or f"{self.alias}:5432"
        return f"postgresql://postgres:{POSTGRES_PASSWORD}@{address}/{database}"

    def log_tail(self, lines: int = 30) -> str:
        out, err = self._container.get_logs()
        return "\n".join((out + err).decode(errors="replace").splitlines()[-lines:])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self._container.start()
        self._port = published_port(self._container, 5432)
        self._major = self._loop.run(self._wait_until_ready(within=timeout))
        self._loop.run(alter_system(self.dsn(), "synchronous_commit", "off"))

    async def _wait_until_ready(self, *, within: float) -> int:
        # The image's first server listens on its socket only; a TCP connection that
        # succeeds is the real server (the way testcontainers checks it, too).
        deadline = time.monotonic() + within
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if container_status(self._container) not in ("created", "running"):
                break
            try:
                connection = await asyncpg.connect(self.dsn(), timeout=2)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                last = error
                await _pause()
                continue
            try:
                version = await connection.fetchval("SHOW server_version_num")
            finally:
                await connection.close()
            return int(version) // 10000
        raise DockerBackendError(
            f"the Postgres container did not accept connections within {within}s "
            f"(last error: {last}).\nLast log lines:\n{self.log_tail()}"
        )

    def connect(self, network: Network) -> None:
        """Join a stack's network. Docker then re-publishes the port (a new random host
        port, a new proxy): connections through the old one are cut."""
        network.connect(self._container.get_container_id(), [self.alias])
        self._port = published_port(self._container, 5432)
        self._loop.run(self._wait_until_ready(within=START_TIMEOUT))

    @property
    def running(self) -> bool:
        """Whether the server runs, as far as faults go: asked between every two tests, so
        it asks Docker nothing (a container that died on its own fails the clean-up that
        follows, with the database's error)."""
        return not self._held

    def shut_down(self) -> None:
        """Stop the server as an operator would (fast shutdown); returns once it is down."""
        self._signal_server("INT")

    def crash(self) -> None:
        """Kill the postmaster and its backends at once (SIGKILL); returns once they are gone."""
        self._signal_server("KILL")

    def start_again(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server again in its container, same data and port; returns once it
        accepts connections (after crash recovery, if it crashed)."""
        if not self._held:
            return
        self._exec("rm -f /tmp/harness-postgres.held")
        self._held = False
        self._loop.run(self._wait_until_ready(within=timeout))

    def _signal_server(self, signal_name: str) -> None:
        if self._held:
            return
        self._exec(_POSTGRES_SIGNAL, signal_name)
        self._held = True

    def _exec(self, script: str, *arguments: str) -> None:
        result = self._container.get_wrapped_container().exec_run(
            ["bash", "-c", script, "harness-postgres", *arguments]
        )
        if result.exit_code != 0:
            output = (
                result.output.decode(errors="replace") if isinstance(result.output, bytes) else ""
            )
            raise DockerBackendError(
                f"`{script.strip().splitlines()[0]} ...` in the Postgres container exited "
                f"with {result.exit_code}: {output.strip()}"
            )

    def stop(self) -> None:
        self._container.stop()
        self._loop.close()


async def _pause() -> None:
    # Between two connection attempts (each itself waits up to its timeout): the
    # server is still starting, and retrying at once would only spin.
    await asyncio.sleep(0.05)


class DockerService:
    """A service container on a stack's network, published on a random loopback port."""

    def __init__(
        self, spec: ServiceSpec, env: Mapping[str, str], network: Network, bridge: str
    ) -> None:
        self.name = spec.name
        self._spec = spec
        self._container = (
            DockerContainer(spec.image)
            .with_envs(
                **{
                    **env,
                    spec.host_setting: "0.0.0.0",  # noqa: S104 - inside the container
                    spec.port_setting: str(spec.port),
                }
            )
            .with_network(network)
            .with_network_aliases(spec.name)
            .with_name(f"harness-{spec.name}-{uuid.uuid4().hex[:8]}")
            .with_kwargs(labels=labels(), extra_hosts={HOST_ALIAS: "host-gateway"})
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
        with grpc.insecure_channel(self.address) as channel:
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

    def __init__(self, postgres_image: str) -> None:
        # Ryuk would be pulled from a registry: the harness reaps by its own labels.
        testcontainers_config.ryuk_disabled = True
        self._client = docker.from_env()
        reap_stale_resources(self._client)
        require_image(self._client, postgres_image, "`make images` (or docker pull it)")
        self.reachable_host = HOST_ALIAS
        self.bridge = bridge_address(self._client)
        self.bind_host = self.bridge
        self.postgres = DockerPostgres(postgres_image)
        self.postgres.start()
        self._networks: list[Network] = []
        self._services: list[DockerService] = []

    def database_url(self, database: str, via: str | None = None) -> str:
        return self.postgres.service_dsn(database, via)

    def service_address(self, spec: ServiceSpec, handle: DockerService) -> str:
        """How a service reaches another: by its alias on the stack's network."""
        return f"{spec.name}:{spec.port}"

    def network(self) -> Network:
        """A new network for a stack, with Postgres on it."""
        network = Network(docker_network_kw={"labels": labels()}).create()
        self._networks.append(network)
        self.postgres.connect(network)
        return network

    def launch_service(
        self, spec: ServiceSpec, env: Mapping[str, str], network: Network | None
    ) -> DockerService:
        """Start a service container without waiting for it (``handle.wait_serving()``)."""
        assert network is not None, "docker services run on a stack's network"
        image = require_image(
            self._client,
            spec.image,
            "build the service images (`make images`, or `python scripts/images.py build`)",
        )
        require_current_image(spec, image.labels)
        handle = DockerService(spec, env, network, self.bridge)
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
