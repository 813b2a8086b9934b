"""``@pytest.mark.stack(...)``: its signature, and the request it makes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from harness.errors import StackError
from harness.stacks.replicas import replica_counts
from harness.stacks.request import StackRequest

__all__ = [
    "STACK_MARKER",
    "stack_marker",
    "stack_request",
]


STACK_MARKER = (
    "stack(*services, mocks=(), links=(), replicas={}): the services the test needs, booted "
    "with the services they call (unless mocked) by the `stack` fixture; `mocks` are served "
    "by generated gRPC mocks; `links` are (caller, callee) pairs, callee a service or "
    "'postgres', to put a fault proxy between (stack.link(caller, callee)); `replicas` maps "
    "a booted service to how many of it run, its callers balancing over them"
)


def stack_marker(
    *services: str,
    mocks: Sequence[str] = (),
    links: Sequence[tuple[str, str]] = (),
    replicas: Mapping[str, int] | None = None,
) -> StackRequest:
    """The signature of ``@pytest.mark.stack``: its arguments are checked by calling this."""
    return StackRequest(
        tuple(services),
        tuple(mocks),
        tuple(tuple(link) for link in links),  # type: ignore[misc]
        replica_counts({} if replicas is None else replicas),
    )


def stack_request(node: pytest.Item) -> StackRequest:
    marker = node.get_closest_marker("stack")
    if marker is None:
        raise StackError(
            f"{node.nodeid} uses the `stack` fixture without @pytest.mark.stack(...): say "
            "which services it needs, e.g. @pytest.mark.stack('dummy', mocks=['user'])"
        )
    try:
        return stack_marker(*marker.args, **marker.kwargs)
    except TypeError as error:
        raise StackError(
            f"@pytest.mark.stack takes services, mocks=, links= and replicas=: {error}. "
            "E.g. @pytest.mark.stack('gateway', mocks=['auth'], links=[('gateway', 'dummy')]) "
            "or @pytest.mark.stack('gateway', replicas={'dummy': 2})"
        ) from None
