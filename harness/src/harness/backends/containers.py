"""What the docker backend asks of Docker: labels that name the owning run and reaping by
them, the bridge address, images that must be there and be current, published ports."""

from __future__ import annotations

import fcntl
import socket
import struct
from collections.abc import Mapping

import docker
from docker.errors import APIError, NotFound
from docker.models.images import Image
from testcontainers.core.container import DockerContainer

from harness.errors import DockerBackendError
from harness.owner import current_owner, owner_gone
from harness.services import ServiceSpec
from harness.workspace import SOURCE_DIGEST_LABEL

__all__ = [
    "HOST_ALIAS",
    "LABEL",
    "OWNER_LABEL",
    "START_TIMEOUT",
    "bridge_address",
    "container_status",
    "current_image",
    "interface_address",
    "labels",
    "publish_on_loopback",
    "published_port",
    "reap_stale_resources",
    "require_current_image",
    "require_image",
]


LABEL = "harness"
OWNER_LABEL = "harness.owner"  # the test process (harness.owner.current_owner)
HOST_ALIAS = "host.docker.internal"
START_TIMEOUT = 60.0


def labels() -> dict[str, str]:
    return {LABEL: "true", OWNER_LABEL: current_owner()}


def reap_stale_resources(client: docker.DockerClient) -> list[str]:
    """Remove the containers, then the networks, of harness runs whose process is gone."""
    reaped: list[str] = []

    # Other sessions (xdist workers starting together) reap at the same time and runs end:
    # a container or network gone between the listing and its removal is not an error.
    containers = client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True)
    for container in containers:
        if owner_gone(container.labels.get(OWNER_LABEL, "")):
            try:
                container.remove(force=True, v=True)
            except NotFound:
                continue
            reaped.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": LABEL}):
        if owner_gone(network.attrs.get("Labels", {}).get(OWNER_LABEL, "")):
            try:
                network.remove()
                reaped.append(f"network {network.name}")
            except NotFound:
                pass  # another session reaped it first
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


def current_image(
    client: docker.DockerClient, spec: ServiceSpec, image: Image, images_command: str
) -> Image:
    """``image`` (the spec's tag) when it holds the checkout's code, else another image of
    its repository built from the same sources (its source-digest label): the content tag
    ``kit/user:<hash>`` of this checkout when another checkout has since moved
    ``kit/user:local`` to its own code. Raises as :func:`require_current_image` when none
    is found."""
    if not spec.source_digest or _built_from(image.labels) in (None, spec.source_digest):
        return image
    name, _, tag = spec.image.rpartition(":")
    repository = name if name and "/" not in tag else spec.image
    same_sources = client.images.list(
        name=repository, filters={"label": f"{SOURCE_DIGEST_LABEL}={spec.source_digest}"}
    )
    if same_sources:
        return same_sources[0]
    require_current_image(spec, image.labels, images_command)
    return image


def _built_from(labels: Mapping[str, str] | None) -> str | None:
    return (labels or {}).get(SOURCE_DIGEST_LABEL)


def require_current_image(
    spec: ServiceSpec, labels: Mapping[str, str] | None, images_command: str = "kit-images build"
) -> None:
    """Refuse an image (of these ``labels``) built from other code than the checkout's: the
    tests would pass or fail on old code. Checked when the spec names its sources and the
    image its own."""
    built_from = _built_from(labels)
    if spec.source_digest and built_from is not None and built_from != spec.source_digest:
        raise DockerBackendError(
            f"image {spec.image} holds other code than this checkout's {spec.name} (and the "
            "members it depends on): it was built before the last change. Remedy: rebuild "
            f"it (`{images_command}` in the project), or run on the process backend "
            "(--harness-backend=process)."
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
