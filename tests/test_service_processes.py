"""Each service as an operator runs it: ``python -m <service>``.

It migrates its database, answers a gRPC health check and a real request, exposes
reflection, and on SIGTERM reports NOT_SERVING, drains and exits 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from fixtures.factories import (
    CreateEntityRequestFactory,
    CreateSessionRequestFactory,
    CreateUserRequestFactory,
)
from fixtures.inprocess import InProcess
from harness import ServiceProcess, ServiceStartError
from user.v1 import user_pb2, user_pb2_grpc

# runs Postgres and/or service processes
pytestmark = pytest.mark.integration


async def create_session(channel: grpc.aio.Channel) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    created = await stub.CreateSession(CreateSessionRequestFactory.build())
    validated = await stub.ValidateSession(auth_pb2.ValidateSessionRequest(token=created.token))
    assert validated.session == created.session


async def create_user(channel: grpc.aio.Channel) -> None:
    stub = user_pb2_grpc.UserServiceStub(channel)
    created = await stub.CreateUser(CreateUserRequestFactory.build())
    fetched = await stub.GetUser(user_pb2.GetUserRequest(id=created.user.id))
    assert fetched.user == created.user


async def create_entity(channel: grpc.aio.Channel, owner_id: str) -> None:
    stub = dummy_pb2_grpc.DummyServiceStub(channel)
    request = CreateEntityRequestFactory.build(owner_id=owner_id)
    created = await stub.CreateEntity(request)
    fetched = await stub.GetEntity(
        dummy_pb2.GetEntityRequest(owner_id=request.owner_id, id=created.entity.id)
    )
    assert fetched.entity == created.entity


REAL_REQUESTS: dict[str, tuple[str, Callable[[grpc.aio.Channel, str], Awaitable[None]]]] = {
    "auth": ("auth.v1.AuthService", lambda channel, owner: create_session(channel)),
    "user": ("user.v1.UserService", lambda channel, owner: create_user(channel)),
    "dummy": ("dummy.v1.DummyService", create_entity),
}


@pytest.mark.parametrize("service", REAL_REQUESTS)
async def test_service_serves_and_stops_cleanly_on_sigterm(
    service: str,
    clean_databases: Mapping[str, str],
    clean_service_state: None,
    user_service: InProcess,
    tmp_path: Path,
) -> None:
    full_name, real_request = REAL_REQUESTS[service]
    prefix = service.upper()
    process = ServiceProcess(
        name=service,
        module=service,
        env={
            f"{prefix}_DATABASE_URL": clean_databases[service],
            f"{prefix}_GRPC_PORT": "0",
            # dummy asks the user service about owners: here the in-process one
            "DUMMY_USER_ADDRESS": user_service.address,
        },
        log_path=tmp_path / f"{service}.log",
    )
    process.start()
    try:
        async with grpc.aio.insecure_channel(process.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", full_name):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            # an owner the in-process user service knows (whatever the contract target)
            owner = await user_pb2_grpc.UserServiceStub(user_service.channel).CreateUser(
                CreateUserRequestFactory.build()
            )
            await real_request(channel, owner.user.id)
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            async for reply in reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            ):
                names = {s.name for s in reply.list_services_response.service}
                assert full_name in names
    finally:
        code = process.stop(timeout=15)
    assert code == 0, process.log_tail()
    log = process.log_tail()
    assert "stopping: draining in-flight calls" in log
    assert '"stopped"' in log


@pytest.mark.parametrize("service", REAL_REQUESTS)
@pytest.mark.parametrize(
    ("database_url", "problem"),
    [("", "should match pattern"), ("mysql://db/x", "should match pattern"), (None, "required")],
    ids=["empty", "not postgres", "unset"],
)
def test_bad_configuration_stops_the_service_with_the_variable_named(
    service: str, database_url: str | None, problem: str, tmp_path: Path
) -> None:
    variable = f"{service.upper()}_DATABASE_URL"
    env = {} if database_url is None else {variable: database_url}
    process = ServiceProcess(
        name=service, module=service, env=env, log_path=tmp_path / f"{service}.log"
    )
    with pytest.raises(ServiceStartError, match="exited with code 2") as raised:
        process.start()
    assert f"{variable}: " in str(raised.value)
    assert problem in str(raised.value)


def test_a_half_configured_oauth_provider_stops_auth_naming_what_to_set(
    clean_databases: Mapping[str, str], tmp_path: Path
) -> None:
    process = ServiceProcess(
        name="auth",
        module="auth",
        env={"AUTH_DATABASE_URL": clean_databases["auth"], "AUTH_GITHUB_CLIENT_ID": "abc"},
        log_path=tmp_path / "auth.log",
    )
    with pytest.raises(ServiceStartError, match="exited with code 2") as raised:
        process.start()
    assert "set AUTH_GITHUB_CLIENT_SECRET, AUTH_GITHUB_REDIRECT_URI" in str(raised.value)
