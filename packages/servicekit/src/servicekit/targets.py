"""Where a service reaches another: a gRPC target, checked when the settings are read.

A caller's channel (:func:`servicekit.channels.service_channel`) spreads its calls over
every address its target names (round robin), so a target may name one replica or
several. The forms accepted, each with an explicit port (gRPC would quietly default to
443):

- ``host:port`` (``user:50052``, ``127.0.0.1:50052``, ``[::1]:50052``): resolved by DNS;
  a name with several A records (a Kubernetes headless Service, a Docker network alias
  shared by several containers) reaches every one;
- ``dns:///host:port`` or ``dns:host:port`` (the same, spelt as gRPC's naming document
  does; ``dns://<resolver>/host:port`` names the DNS server too);
- ``ipv4:addr:port,addr:port,...`` and ``ipv6:[addr]:port,...``: fixed addresses, e.g.
  several replicas on one machine (what the harness gives a caller of a replicated
  service on the process backend).

Anything else (a missing or out-of-range port, white space, a scheme gRPC does not know
here, an address that is not one) is refused with the forms above, so that a typo stops
the service at start-up instead of failing its first call.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["GrpcTarget", "check_grpc_target"]

FORMS = (
    "host:port (e.g. user:50052), dns:///host:port, "
    "or ipv4:addr:port,addr:port (e.g. ipv4:127.0.0.1:50052,127.0.0.1:50062)"
)
_OTHER_SCHEMES = frozenset({"unix", "unix-abstract", "vsock", "xds", "google-c2p"})
_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_HOST_PORT = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]+):(?P<port>[^:]*)")


def check_grpc_target(target: str) -> str:
    """``target`` unchanged when it is one of the forms of the module docstring; a
    ValueError that says what is wrong and names the forms otherwise."""
    if not target or target != target.strip() or any(char.isspace() for char in target):
        raise ValueError(f"{target!r} is not a gRPC target: no white space; give {FORMS}")
    scheme, _, rest = target.partition(":")
    if scheme in {"ipv4", "ipv6"}:
        addresses = rest.split(",")
        if not all(addresses):
            raise ValueError(f"{target!r}: {scheme}: needs addr:port entries, comma-separated")
        for entry in addresses:
            _check_ip_entry(target, scheme, entry)
        return target
    if scheme == "dns":
        # dns:host:port, dns:///host:port, dns://resolver/host:port
        name = rest.removeprefix("//").partition("/")[2] if rest.startswith("//") else rest
        _check_host_port(target, name)
        return target
    if scheme in _OTHER_SCHEMES or rest.startswith("/"):
        raise ValueError(f"{target!r}: the scheme {scheme!r} is not accepted here; give {FORMS}")
    if "," in target:
        raise ValueError(
            f"{target!r}: several addresses are written ipv4:addr:port,addr:port "
            "(or ipv6:[addr]:port,...); a name with several A records needs no list"
        )
    _check_host_port(target, target)
    return target


def _check_host_port(target: str, host_port: str) -> None:
    match = _HOST_PORT.fullmatch(host_port)
    if match is None:
        raise ValueError(f"{target!r} is not a gRPC target: give {FORMS}")
    host = match["host"]
    if host.startswith("["):
        _check_ip(target, "ipv6", host[1:-1])
    elif not _HOST.fullmatch(host):
        raise ValueError(f"{target!r}: {host!r} is not a host name or address; give {FORMS}")
    _check_port(target, match["port"])


def _check_ip_entry(target: str, scheme: str, entry: str) -> None:
    match = _HOST_PORT.fullmatch(entry)
    if match is None:
        raise ValueError(f"{target!r}: {entry!r} is not addr:port (the port is required)")
    host = match["host"]
    if scheme == "ipv6":
        if not host.startswith("["):
            raise ValueError(f"{target!r}: write an IPv6 address in brackets, [addr]:port")
        host = host[1:-1]
    _check_ip(target, scheme, host)
    _check_port(target, match["port"])


def _check_ip(target: str, scheme: str, host: str) -> None:
    kind = ipaddress.IPv4Address if scheme == "ipv4" else ipaddress.IPv6Address
    try:
        kind(host)
    except ValueError:
        raise ValueError(f"{target!r}: {host!r} is not an {scheme} address") from None


def _check_port(target: str, port: str) -> None:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{target!r}: the port {port!r} is not a number from 1 to 65535")


GrpcTarget = Annotated[str, AfterValidator(check_grpc_target)]
"""A setting that holds a gRPC target (see the module docstring)."""
