"""What a test asks for (:class:`StackRequest`), and the waves its services boot in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import StackError
from harness.faults.links import link_name
from harness.services import ServiceSpec

__all__ = [
    "StackRequest",
    "boot_waves",
]


@dataclass(frozen=True)
class StackRequest:
    """What a test asks for: services by name, the ones replaced by mocks, the fault
    links (caller, callee) to put between services, or a service and its database
    (callee ``"postgres"``), and the services booted as several replicas (service,
    count), sorted, counts of 1 left out (:func:`~harness.stacks.replicas.replica_counts`)."""

    services: tuple[str, ...]
    mocks: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    replicas: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> tuple[tuple[str, ...], ...]:
        return (
            tuple(sorted(self.services)),
            tuple(sorted(self.mocks)),
            tuple(sorted(link_name(*link) for link in self.links)),
            tuple(f"{name}*{count}" for name, count in sorted(self.replicas)),
        )

    def replica_count(self, name: str) -> int:
        """How many replicas of ``name`` to boot (1 unless asked for more)."""
        return dict(self.replicas).get(name, 1)


def boot_waves(
    specs: Mapping[str, ServiceSpec], request: StackRequest
) -> tuple[list[list[ServiceSpec]], list[ServiceSpec]]:
    """The services to boot, in waves (each wave only calls services of earlier waves or
    mocks: a wave starts side by side), and the services to mock."""
    unknown = sorted(name for name in (*request.services, *request.mocks) if name not in specs)
    if unknown:
        raise StackError(f"unknown services {unknown}; declared: {sorted(specs)}")
    clash = sorted(set(request.services) & set(request.mocks))
    if clash:
        raise StackError(f"{clash} asked for both as a service and as a mock")
    booted: list[ServiceSpec] = []
    mocked = [specs[name] for name in sorted(set(request.mocks))]

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise StackError(f"services call each other in a cycle: {' -> '.join((*path, name))}")
        if name in request.mocks:
            return
        spec = specs[name]
        for callee in sorted(spec.calls):
            if callee not in specs:
                raise StackError(f"{name} calls {callee!r}, which is not declared")
            visit(callee, (*path, name))
        if spec not in booted:
            booted.append(spec)

    for name in request.services:
        visit(name, ())
    depth: dict[str, int] = {}
    for spec in booted:  # dependencies come first in `booted`
        depth[spec.name] = 1 + max(
            (depth[callee] for callee in spec.calls if callee in depth), default=-1
        )
    waves = [
        [spec for spec in booted if depth[spec.name] == level]
        for level in range(max(depth.values(), default=-1) + 1)
    ]
    return waves, mocked
