"""Several replicas of one service in a stack, as a Kubernetes Deployment runs them.

``@pytest.mark.stack("gateway", replicas={"auth": 2, "dummy": 2})`` boots two processes
(or containers) of auth and of dummy. Their callers are given one address that reaches
both, and their channels (``servicekit.channels``: round robin) spread the calls over
them, as callers do behind a headless Service: on the process backend a gRPC target
``ipv4:127.0.0.1:p1,127.0.0.1:p2``, on the docker backend the service's name, a network
alias every replica carries, which Docker's DNS answers with every replica's address.

Each replica is an *instance* named ``<service>-<index>`` (``auth-0``, ``auth-1``; a
service with one replica is named after the service), which its spans carry as the
resource attribute ``service.instance.id`` (``OTEL_RESOURCE_ATTRIBUTES``): a test shows
which replica answered from the trace (``Span.instance``, ``Trace.instances``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from harness.errors import StackError
from harness.faults.links import link_name
from harness.services import ServiceHandle, ServiceSpec

__all__ = [
    "INSTANCE_ATTRIBUTE",
    "ReplicaSet",
    "check_replicas",
    "instance_env",
    "instance_name",
    "replica_counts",
]

INSTANCE_ATTRIBUTE = "service.instance.id"


def replica_counts(replicas: object) -> tuple[tuple[str, int], ...]:
    """The marker's ``replicas=`` as sorted (service, count) pairs, counts of 1 left out
    (so that ``{"user": 1}`` is the stack of the default); StackError for anything but
    a mapping of service names to whole numbers of at least 1."""
    if not isinstance(replicas, Mapping):
        raise StackError(
            f"replicas={replicas!r}: give a mapping of service to its number of replicas, "
            "e.g. replicas={'user': 2}"
        )
    problems = []
    for name, count in replicas.items():
        if not isinstance(name, str):
            problems.append(f"{name!r} is not a service name")
        elif isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f"{name}: {count!r} is not a number of replicas (1 or more)")
    if problems:
        raise StackError("replicas that cannot be booted:\n  - " + "\n  - ".join(problems))
    return tuple(sorted((name, count) for name, count in replicas.items() if count > 1))


def check_replicas(
    specs: Mapping[str, ServiceSpec],
    booted: Collection[str],
    replicas: Sequence[tuple[str, int]],
    links: Sequence[tuple[str, str]],
) -> None:
    """Raise StackError naming each replicated service the stack cannot boot so: one it
    does not boot (unknown, mocked, or called by nothing asked for), or one a fault link
    leads to (a link is one proxy in front of one address)."""
    problems = []
    for name, _ in replicas:
        if name not in specs:
            problems.append(f"{name!r} is not a declared service (declared: {sorted(specs)})")
        elif name not in booted:
            problems.append(
                f"{name!r} is not booted by this stack (it boots {sorted(booted)}); a mock "
                "is one server, it has no replicas"
            )
    replicated = {name for name, _ in replicas}
    for caller, callee in links:
        if callee in replicated:
            problems.append(
                f"the link {link_name(caller, callee)} leads to a service with replicas: a "
                f"link is one proxy in front of one address; link {callee}'s callers with "
                "one replica of it, or its own calls (e.g. to 'postgres')"
            )
    if problems:
        raise StackError("replicas that cannot be booted:\n  - " + "\n  - ".join(problems))


def instance_name(service: str, index: int, count: int) -> str:
    """``auth-0``, ``auth-1`` for a service of several replicas; ``auth`` for one."""
    return service if count == 1 else f"{service}-{index}"


def instance_env(env: Mapping[str, str], instance: str) -> dict[str, str]:
    """``env`` with ``service.instance.id=<instance>`` added to ``OTEL_RESOURCE_ATTRIBUTES``
    (the OpenTelemetry SDK reads it into the resource of every span the service sends)."""
    given = env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    kept = [pair for pair in given.split(",") if pair and not pair.startswith(INSTANCE_ATTRIBUTE)]
    attributes = ",".join([*kept, f"{INSTANCE_ATTRIBUTE}={instance}"])
    return {**env, "OTEL_RESOURCE_ATTRIBUTES": attributes}


class ReplicaSet:
    """The replicas of one service, handled as one :class:`~harness.ServiceHandle`:
    its address reaches them all, and stop, kill and start act on each (start: those not
    running). ``replicas`` are the handles of each, by index."""

    def __init__(self, name: str, replicas: Sequence[ServiceHandle], *, is_http: bool) -> None:
        self.name = name
        self.replicas = tuple(replicas)
        self._is_http = is_http

    @property
    def address(self) -> str:
        """A gRPC target naming every replica: ``ipv4:127.0.0.1:p1,127.0.0.1:p2``."""
        if self._is_http:
            raise StackError(
                f"{self.name} runs {len(self.replicas)} replicas and speaks HTTP, which no "
                f"client here balances: ask for one, e.g. stack.http({self.name!r}, replica=0)"
            )
        return "ipv4:" + ",".join(replica.address for replica in self.replicas)

    @property
    def running(self) -> bool:
        return all(replica.running for replica in self.replicas)

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.running:
                replica.stop()

    def kill(self) -> None:
        for replica in self.replicas:
            if replica.running:
                replica.kill()

    def start(self) -> None:
        self.launch()
        self.wait_serving()

    def launch(self) -> None:
        for replica in self.replicas:
            if not replica.running:
                replica.launch()

    def wait_serving(self) -> None:
        for replica in self.replicas:
            replica.wait_serving()

    def log_tail(self, lines: int = 50) -> str:
        return "\n".join(
            f"--- {replica.name} ---\n{replica.log_tail(lines)}" for replica in self.replicas
        )
