"""Replicas in a stack, without booting one: the marker's argument, what a stack refuses,
the replica set's address and life, and the instance each replica's spans carry.

The stacks themselves, booted with replicas on both backends, are tested in the
repository's tests/test_replicas.py and tests/test_replicas_migrate.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from opentelemetry.trace import SpanKind

from harness import (
    ReplicaSet,
    ServiceSpec,
    Span,
    Stack,
    StackError,
    StackRequest,
    Trace,
    TraceReceiver,
)
from harness.stacks.marker import stack_marker
from harness.stacks.replicas import check_replicas, instance_env, instance_name
from servicekit.telemetry import start_telemetry

SPECS = {
    "user": ServiceSpec("user", grpc_port=50052, database="user"),
    "dummy": ServiceSpec(
        "dummy", grpc_port=50053, database="dummy", calls={"user": "DUMMY_USER_ADDRESS"}
    ),
    "gateway": ServiceSpec("gateway", http_port=8080, calls={"dummy": "GATEWAY_DUMMY_ADDRESS"}),
}


# ------------------------------------------------------------------------ the marker


def test_the_marker_keeps_counts_above_one_sorted() -> None:
    request = stack_marker("gateway", replicas={"user": 2, "dummy": 3, "gateway": 1})
    assert request.replicas == (("dummy", 3), ("user", 2))
    assert request.replica_count("dummy") == 3
    assert request.replica_count("gateway") == 1
    # one replica is the default: the same stack, booted once for both
    assert stack_marker("gateway", replicas={"user": 1}).key == stack_marker("gateway").key
    assert stack_marker("gateway", replicas={"user": 2}).key != stack_marker("gateway").key


@pytest.mark.parametrize(
    ("replicas", "says"),
    [
        (["user", 2], "give a mapping of service to its number of replicas"),
        ({"user": 0}, "user: 0 is not a number of replicas"),
        ({"user": "2"}, "user: '2' is not a number of replicas"),
        ({"user": True}, "user: True is not a number of replicas"),
        ({"user": 1.5}, "user: 1.5 is not a number of replicas"),
        ({2: 2}, "2 is not a service name"),
    ],
    ids=["a-list", "zero", "text", "bool", "fraction", "not-a-name"],
)
def test_a_marker_with_replicas_that_make_no_sense_is_refused(replicas: Any, says: str) -> None:
    with pytest.raises(StackError, match=says):
        stack_marker("dummy", replicas=replicas)


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        (StackRequest(("dummy",), replicas=(("auth", 2),)), "'auth' is not a declared service"),
        (
            StackRequest(("user",), replicas=(("dummy", 2),)),
            r"'dummy' is not booted by this stack \(it boots \['user'\]\)",
        ),
        (
            StackRequest(("dummy",), mocks=("user",), replicas=(("user", 2),)),
            "a mock is one server, it has no replicas",
        ),
        (
            StackRequest(("dummy",), links=(("dummy", "user"),), replicas=(("user", 2),)),
            "the link dummy -> user leads to a service with replicas",
        ),
    ],
    ids=["undeclared", "not-booted", "mocked", "linked-to"],
)
def test_a_stack_refuses_replicas_it_cannot_boot(request_: StackRequest, says: str) -> None:
    booted = [name for name in ("user", "dummy", "gateway") if name in request_.services]
    if "dummy" in booted and "user" not in request_.mocks:
        booted.insert(0, "user")
    with pytest.raises(StackError, match=says):
        check_replicas(SPECS, booted, request_.replicas, request_.links)


def test_links_from_a_replicated_caller_are_allowed() -> None:
    # every replica of dummy reaches user, and its database, through the one link
    check_replicas(
        SPECS, ["user", "dummy"], (("dummy", 2),), (("dummy", "user"), ("dummy", "postgres"))
    )


# ------------------------------------------------------------------------ instances


def test_instances_are_named_after_the_service_and_told_to_opentelemetry() -> None:
    assert [instance_name("auth", i, 2) for i in range(2)] == ["auth-0", "auth-1"]
    assert instance_name("auth", 0, 1) == "auth"
    assert instance_env({"A": "1"}, "auth-1") == {
        "A": "1",
        "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=auth-1",
    }
    given = {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,service.instance.id=x"}
    assert instance_env(given, "auth-0")["OTEL_RESOURCE_ATTRIBUTES"] == (
        "deployment.environment=test,service.instance.id=auth-0"
    )


@pytest.mark.integration
async def test_a_services_spans_carry_the_instance_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=dummy-1")
    with TraceReceiver() as receiver:
        telemetry = start_telemetry(
            "dummy", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        )
        try:
            tracer = telemetry.tracer_provider.get_tracer("test")
            with tracer.start_as_current_span(
                "/dummy.v1.DummyService/GetEntity", kind=SpanKind.SERVER
            ):
                pass
        finally:
            assert telemetry.shutdown()
        trace = await receiver.trace(None, settle=0.1)
    assert [(span.service, span.instance) for span in trace.spans] == [("dummy", "dummy-1")]
    assert trace.instances("dummy") == {"dummy-1": 1}


def span(instance: str, name: str = "/auth.v1.AuthService/ValidateSession") -> Span:
    return Span(
        trace_id="1" * 32,
        span_id=f"{abs(hash((instance, name))) % 16**16:016x}",
        parent_span_id=None,
        name=name,
        service="auth",
        kind="SERVER",
        start_ns=1,
        end_ns=2,
        status="UNSET",
        instance=instance,
    )


def test_a_trace_counts_the_calls_each_instance_answered() -> None:
    trace = Trace(
        [span("auth-0"), span("auth-1"), span("auth-0", "/auth.v1.AuthService/CreateSession")]
    )
    assert trace.instances("auth") == {"auth-0": 2, "auth-1": 1}
    assert trace.instances("auth", "auth.v1.AuthService/ValidateSession") == {
        "auth-0": 1,
        "auth-1": 1,
    }
    assert trace.instances("user") == {}
    assert "[auth auth-1] /auth.v1.AuthService/ValidateSession" in trace.render()
    assert span("auth").describe().startswith("[auth] ")  # one replica: as before


# ------------------------------------------------------------------------ the replica set


class FakeReplica:
    """A ServiceHandle that records what was done to it."""

    def __init__(self, name: str, port: int, running: bool = True) -> None:
        self.name = name
        self.address = f"127.0.0.1:{port}"
        self.running = running
        self.done: list[str] = []

    def stop(self) -> None:
        self.done.append("stop")
        self.running = False

    def kill(self) -> None:
        self.done.append("kill")
        self.running = False

    def start(self) -> None:
        self.launch()
        self.wait_serving()

    def launch(self) -> None:
        self.done.append("launch")
        self.running = True

    def wait_serving(self) -> None:
        self.done.append("wait")

    def log_tail(self, lines: int = 50) -> str:
        return f"a line of {self.name}"


def replica_set(*, is_http: bool = False) -> tuple[ReplicaSet, list[FakeReplica]]:
    replicas = [FakeReplica("auth-0", 5001), FakeReplica("auth-1", 5002)]
    return ReplicaSet("auth", replicas, is_http=is_http), replicas


def test_a_replica_set_is_reached_at_a_target_naming_every_replica() -> None:
    both, _ = replica_set()
    assert both.address == "ipv4:127.0.0.1:5001,127.0.0.1:5002"
    http, _ = replica_set(is_http=True)
    with pytest.raises(StackError, match=r"speaks HTTP.*stack.http\('auth', replica=0\)"):
        _ = http.address


def test_a_replica_set_starts_again_only_the_replicas_that_are_down() -> None:
    both, (first, second) = replica_set()
    second.kill()
    assert not both.running
    both.start()
    assert both.running
    assert first.done == ["wait"]  # left running: not launched twice
    assert second.done == ["kill", "launch", "wait"]
    both.stop()
    assert (first.done[-1], second.done[-1]) == ("stop", "stop")
    assert both.log_tail() == "--- auth-0 ---\na line of auth-0\n--- auth-1 ---\na line of auth-1"


def test_a_stack_hands_out_each_replica_or_all_of_them() -> None:
    both, (first, second) = replica_set()
    user = FakeReplica("user", 6001)
    booted = Stack(
        backend=cast(Any, None),
        request=StackRequest(("auth", "user"), replicas=(("auth", 2),)),
        postgres=cast(Any, SimpleNamespace(faults=())),  # up: no fault
        handles={"user": user, "auth": both},
    )
    assert booted.handle("auth", 1) is second
    assert booted.address("auth", 0) == first.address
    assert booted.address("auth") == both.address
    assert booted.address("user", 0) == user.address
    assert list(booted.instances()) == ["user", "auth-0", "auth-1"]
    with pytest.raises(StackError, match=r"auth runs 2 replica\(s\): replica=2 is not one of 0..1"):
        booted.handle("auth", 2)
    with pytest.raises(StackError, match=r"replicas=\{'user': 2\}"):
        booted.address("user", 1)
    second.kill()
    assert booted.faults == {"auth-1": ("down",)}
