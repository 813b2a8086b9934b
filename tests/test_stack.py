"""Stacks on the session's backend (--harness-backend docker or process): the same tests.

Asking for dummy boots the user service too (dummy calls it about owners); each
test starts from empty databases; a service can be stopped, killed and started
again mid-test, and the stack is healed for the next test.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dummy.v1 import dummy_pb2 as pb
from dummy.v1 import dummy_pb2_grpc
from fixtures.factories import CreateUserRequestFactory
from harness import StackView
from user.v1 import user_pb2, user_pb2_grpc

T = TypeVar("T")
HARNESS_SUBNETS = ipaddress.ip_network("10.213.0.0/16")  # the setting's default

if TYPE_CHECKING:
    from dummy.v1.dummy_pb2_grpc import DummyServiceAsyncStub
    from user.v1.user_pb2_grpc import UserServiceAsyncStub


async def eventually(call: Callable[[], Awaitable[T]], *, within: float) -> T:
    """The first success of ``call`` within ``within`` seconds (UNAVAILABLE retried)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


def stubs(stack: StackView) -> tuple[DummyServiceAsyncStub, UserServiceAsyncStub]:
    return (
        stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub),
        stack.stub("user", user_pb2_grpc.UserServiceStub),
    )


@pytest.mark.stack("dummy")
async def test_asking_for_dummy_brings_the_user_service_it_calls(stack: StackView) -> None:
    dummy, users = stubs(stack)
    owner = (await users.CreateUser(CreateUserRequestFactory.build(), timeout=10)).user
    created = await dummy.CreateEntity(
        pb.CreateEntityRequest(owner_id=owner.id, name="through the stack"), timeout=10
    )
    fetched = await dummy.GetEntity(
        pb.GetEntityRequest(owner_id=owner.id, id=created.entity.id), timeout=10
    )
    assert fetched.entity == created.entity
    # the owner check crossed from dummy to the real user service
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await dummy.CreateEntity(
            pb.CreateEntityRequest(owner_id="00000000-0000-4000-8000-000000000000", name="x"),
            timeout=10,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.stack("dummy")
async def test_every_test_starts_from_empty_databases(stack: StackView) -> None:
    _, users = stubs(stack)
    # the user the previous test created is gone
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await users.GetUserByEmail(user_pb2.GetUserByEmailRequest(email="user0@example.com"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.stack("dummy")
async def test_a_stopped_dependency_gives_a_fast_clear_error_and_recovers(
    stack: StackView,
) -> None:
    dummy, users = stubs(stack)
    owner = (await users.CreateUser(CreateUserRequestFactory.build(), timeout=10)).user
    stack.stop("user")
    with pytest.raises(grpc.aio.AioRpcError) as unavailable:
        await dummy.CreateEntity(pb.CreateEntityRequest(owner_id=owner.id, name="x"), timeout=10)
    assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "user service" in (unavailable.value.details() or "")
    stack.start("user")
    # dummy reconnects on its own (short reconnect backoff): bounded wait, no restart of it
    created = await eventually(
        lambda: dummy.CreateEntity(
            pb.CreateEntityRequest(owner_id=owner.id, name="after the restart"), timeout=10
        ),
        within=5.0,
    )
    assert created.entity.owner_id == owner.id


@pytest.mark.stack("dummy")
async def test_a_killed_service_is_healed_for_the_next_test(stack: StackView) -> None:
    stack.kill("dummy")
    with pytest.raises(grpc.aio.AioRpcError) as down:
        await health_pb2_grpc.HealthStub(stack.channel("dummy")).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
    assert down.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.mark.stack("dummy")
async def test_after_a_kill_the_stack_serves_again(stack: StackView) -> None:
    answer = await health_pb2_grpc.HealthStub(stack.channel("dummy")).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    # every log line since the (re)start: the tests before this one on the same stack may
    # have logged more than the last 50 lines (access lines) after "serving"
    assert "serving" in stack.logs("dummy", lines=100_000)


@pytest.mark.stack("dummy")
def test_service_containers_run_without_health_checks_on_the_harnesss_subnets(
    stack: StackView,
) -> None:
    """The images' HEALTHCHECK execs a Python process every 5 s in every container; the
    harness checks health from outside, so its containers switch it off. The stack's
    network is a /24 of the harness's range (default --harness-docker-subnets)."""
    docker = pytest.importorskip("docker")
    port = stack.address("dummy").rpartition(":")[2]
    try:
        client = docker.from_env()
        containers = client.containers.list(filters={"label": "harness"})
    except docker.errors.DockerException:
        pytest.skip("no Docker engine: the stacks run as processes")
    try:
        published = [
            container
            for container in containers
            for bindings in container.ports.values()
            if any(binding["HostPort"] == port for binding in bindings or ())
        ]
        if not published:
            pytest.skip("dummy is not a container here: the stacks run as processes")
        (container,) = published
        assert container.attrs["Config"]["Healthcheck"]["Test"] == ["NONE"], container.name
        addresses = [
            ipaddress.ip_address(network["IPAddress"])
            for network in container.attrs["NetworkSettings"]["Networks"].values()
        ]
        # the stack's network comes from the harness's range, not Docker's default pools
        assert any(address in HARNESS_SUBNETS for address in addresses), addresses
    finally:
        client.close()
