"""The stacks' networks on /24s of the harness's own range (harness.backends.subnets)."""

from __future__ import annotations

import ipaddress
import uuid
from pathlib import Path

import pytest

from harness import DockerBackendError
from harness.backends.subnets import (
    candidate_subnets,
    create_network,
    host_routes,
    parse_subnets,
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10.213.0.0/16", None),
        (" 172.30.8.0/22 ", None),
        ("192.168.77.0/24", None),
        ("10.213.0.0/25", "smaller than one stack's /24"),
        ("8.8.0.0/16", "not a private range"),
        ("fd00::/64", "not an IPv4 network"),
        ("10.213.0.1/16", "not an IPv4 network such as"),  # host bits set
        ("ten-two-thirteen", "not an IPv4 network such as"),
    ],
)
def test_a_range_is_checked_when_read(text: str, problem: str | None) -> None:
    if problem is None:
        assert parse_subnets(text) == ipaddress.ip_network(text.strip())
    else:
        with pytest.raises(ValueError, match=problem):
            parse_subnets(text)


ROUTE_TABLE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br-1\t0001D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_the_hosts_routes_are_read_without_the_default_route(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(ROUTE_TABLE)
    assert host_routes(table) == [
        ipaddress.ip_network("192.0.2.0/24"),
        ipaddress.ip_network("172.17.0.0/16"),
        ipaddress.ip_network("10.213.1.0/24"),
    ]
    assert host_routes(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ([], ["10.213.0.0/24", "10.213.1.0/24", "10.213.2.0/24", "10.213.3.0/24"]),
        (["10.213.1.0/24"], ["10.213.0.0/24", "10.213.2.0/24", "10.213.3.0/24"]),
        (["10.213.2.0/23", "172.17.0.0/16"], ["10.213.0.0/24", "10.213.1.0/24"]),
        (["10.0.0.0/8"], []),  # a VPN routing all of 10/8: nothing here is free
    ],
)
def test_subnets_a_route_overlaps_are_skipped(routes: list[str], expected: list[str]) -> None:
    found = candidate_subnets(
        parse_subnets("10.213.0.0/22"),
        [ipaddress.IPv4Network(route) for route in routes],
        shuffle=lambda subnets: None,
    )
    assert [str(subnet) for subnet in found] == expected


@pytest.mark.docker
@pytest.mark.integration
def test_a_subnet_another_network_holds_is_passed_over_until_none_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Routes read before another session made its network: Docker's overlap error makes
    the harness take the next subnet, and the error names the setting when none is left."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        pytest.skip("no Docker engine")
    monkeypatch.setattr("harness.backends.subnets.host_routes", lambda: [])
    pair = parse_subnets(f"10.{uuid.uuid4().int % 200 + 20}.254.0/23")
    labels = {"harness.test": uuid.uuid4().hex}  # not "harness": the reaper leaves it be
    made = []
    try:
        made.append(create_network(pair, labels))
        made.append(create_network(pair, labels))
        subnets = {
            client.networks.get(network.id).attrs["IPAM"]["Config"][0]["Subnet"] for network in made
        }
        assert subnets == {str(half) for half in pair.subnets(new_prefix=24)}
        with pytest.raises(DockerBackendError, match="--harness-docker-subnets"):
            create_network(pair, labels)
    finally:
        for network in made:
            network.remove()
        client.close()
