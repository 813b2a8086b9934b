"""servicekit.targets: the gRPC targets a service's settings accept, and the refusals."""

from __future__ import annotations

import pytest

from servicekit.targets import check_grpc_target

ACCEPTED = {
    "name and port": "user:50052",
    "loopback": "127.0.0.1:50052",
    "dotted name": "user.backend-kit.svc.cluster.local:50052",
    "bracketed ipv6": "[::1]:50052",
    "dns, three slashes": "dns:///user:50052",
    "dns, short": "dns:user:50052",
    "dns with a resolver": "dns://10.0.0.10:53/user:50052",
    "one ipv4 address": "ipv4:127.0.0.1:50052",
    "two ipv4 replicas": "ipv4:127.0.0.1:50052,127.0.0.1:50062",
    "two ipv6 replicas": "ipv6:[::1]:50052,[::1]:50062",
}

# target -> what the error says
REFUSED = {
    "empty": ("", "no white space"),
    "no port": ("user", "not a gRPC target"),
    "empty port": ("user:", "is not a number"),
    "port out of range": ("user:70000", "from 1 to 65535"),
    "port zero": ("user:0", "from 1 to 65535"),
    "word for a port": ("user:grpc", "is not a number"),
    "inner space": ("user: 50052", "no white space"),
    "trailing newline": ("user:50052\n", "no white space"),
    "a list without ipv4:": ("127.0.0.1:1,127.0.0.1:2", "are written ipv4:"),
    "ipv4 without port": ("ipv4:127.0.0.1", "port is required"),
    "ipv4 with a name": ("ipv4:user:50052", "not an ipv4 address"),
    "ipv4 empty entry": ("ipv4:127.0.0.1:1,", "comma-separated"),
    "ipv4 nothing": ("ipv4:", "comma-separated"),
    "ipv6 without brackets": ("ipv6:::1", "port is required"),
    "ipv6 not an address": ("ipv6:[zz]:1", "not an ipv6 address"),
    "unix socket": ("unix:///tmp/user.sock", "scheme 'unix' is not accepted"),
    "url": ("http://user:50052", "scheme 'http' is not accepted"),
    "dns without port": ("dns:///user", "not a gRPC target"),
    "underscore-free garbage": ("us/er:50052", "not a host name"),
}


@pytest.mark.parametrize("target", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_targets_are_kept_as_given(target: str) -> None:
    assert check_grpc_target(target) == target


@pytest.mark.parametrize(("target", "says"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_targets_say_why_and_name_the_forms(target: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as refused:
        check_grpc_target(target)
    assert repr(target) in str(refused.value)
