"""Networks for the stacks, each on a small subnet of the harness's own range.

Docker's default address pools hold 31 bridge networks (172.17-31.0.0/16 and sixteen
192.168.x.0/20). A test session keeps a network per stack alive, xdist workers and other
checkouts run sessions at once, and compose wants its own: together they use the pools
up, and the next network fails with "could not find an available, non-overlapping IPv4
address pool". So the harness leaves the default pools to everyone else and puts each
stack's network on a /24 of its own range (``--harness-docker-subnets``, by default
10.213.0.0/16: 256 networks), skipping what the host already routes (its LAN, a VPN,
Docker's bridges) and taking the next subnet when another process took this one first.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from docker.errors import APIError
from docker.types import IPAMConfig, IPAMPool
from testcontainers.core.network import Network

from harness.errors import DockerBackendError

__all__ = [
    "DEFAULT_RANGE",
    "DEFAULT_SUBNETS",
    "STACK_PREFIX",
    "candidate_subnets",
    "create_network",
    "host_routes",
    "parse_subnets",
]

DEFAULT_SUBNETS = "10.213.0.0/16"
STACK_PREFIX = 24  # 254 addresses: a stack has a handful of containers

Subnet = ipaddress.IPv4Network


def parse_subnets(text: str) -> Subnet:
    """The range ``text`` names (``10.213.0.0/16``); ValueError saying what is wrong."""
    try:
        network = ipaddress.ip_network(text.strip())
    except ValueError as error:
        raise ValueError(
            f"{text!r} is not an IPv4 network such as {DEFAULT_SUBNETS}: {error}"
        ) from None
    if not isinstance(network, Subnet):
        raise ValueError(f"{text!r} is not an IPv4 network (Docker's bridges here are IPv4)")
    if not network.is_private:
        raise ValueError(f"{text!r} is not a private range (10/8, 172.16/12, 192.168/16)")
    if network.prefixlen > STACK_PREFIX:
        raise ValueError(f"{text!r} is smaller than one stack's /{STACK_PREFIX}")
    return network


DEFAULT_RANGE = parse_subnets(DEFAULT_SUBNETS)


def host_routes(route_table: Path = Path("/proc/net/route")) -> list[Subnet]:
    """The IPv4 destinations this host routes, default route left out (Linux's table)."""
    try:
        lines = route_table.read_text().splitlines()[1:]
    except OSError:
        return []  # not Linux: Docker's own overlap check still applies
    routes = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination, mask = (
            socket.inet_ntoa(struct.pack("<L", int(field, 16))) for field in (fields[1], fields[7])
        )
        route = ipaddress.ip_network(f"{destination}/{mask}", strict=False)
        if isinstance(route, Subnet) and route.prefixlen > 0:
            routes.append(route)
    return routes


def candidate_subnets(
    subnets: Subnet, routes: Iterable[Subnet], shuffle: Callable[[list[Subnet]], None]
) -> Iterator[Subnet]:
    """The /24s of ``subnets`` that no route overlaps, in ``shuffle``'s order (random, so
    that concurrent sessions seldom try the same one first)."""
    taken = list(routes)
    free = [
        subnet
        for subnet in subnets.subnets(new_prefix=STACK_PREFIX)
        if not any(subnet.overlaps(route) for route in taken)
    ]
    shuffle(free)
    yield from free


def create_network(subnets: Subnet, labels: Mapping[str, str], attempts: int = 32) -> Network:
    """A new bridge network on a free /24 of ``subnets``; DockerBackendError when none is."""
    tried: list[str] = []
    for subnet in candidate_subnets(subnets, host_routes(), random.shuffle):
        if len(tried) == attempts:
            break
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))])
        keywords: dict[str, Any] = {"labels": dict(labels), "ipam": ipam}
        try:
            return Network(docker_network_kw=keywords).create()
        except APIError as error:
            if "overlap" not in str(error).lower():
                raise
            tried.append(str(subnet))  # another session's network, made since routes were read
    raise DockerBackendError(
        f"no free /{STACK_PREFIX} for a stack's network in {subnets} (tried {len(tried)}: "
        f"{', '.join(tried[:4]) or 'every subnet overlaps a route of this host'}). Give the "
        "harness another private range with --harness-docker-subnets (ini "
        "harness_docker_subnets), or remove networks left behind (`docker network prune`)"
    )
