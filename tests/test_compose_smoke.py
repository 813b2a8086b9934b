"""The backend as compose runs it: images built, core and edge healthy, real calls through
the gateway and through Traefik in front of it, nothing left.

Uses the public base images when they are on the machine (or PYTHON_IMAGE /
POSTGRES_IMAGE / TRAEFIK_IMAGE say which), else the local ones, built from Debian
packages and PyPI when missing (no registry needed). Ports are published on random
127.0.0.1 ports, and the compose project has a name of its own, so it never meets a
`docker compose up` of the developer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from auth.v1 import auth_pb2, auth_pb2_grpc
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from fixtures.factories import (
    CreateEntityRequestFactory,
    CreateSessionRequestFactory,
    CreateUserRequestFactory,
)
from user.v1 import user_pb2, user_pb2_grpc

pytestmark = [pytest.mark.docker, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from progress import Mode, Progress  # noqa: E402

from images import build_traefik  # noqa: E402

SERVICES = {"auth": 50051, "user": 50052, "dummy": 50053}
HTTP_ENTRIES = {"gateway": 8080, "traefik": 8000}  # the container port of each HTTP door
PUBLIC_TRAEFIK_IMAGE = "traefik:v3.7"
PUBLIC = {"PYTHON_IMAGE": "python:3.11-slim", "POSTGRES_IMAGE": "postgres:16"}
LOCAL = {"PYTHON_IMAGE": "kit/python:3.11-slim", "POSTGRES_IMAGE": "kit/postgres:15"}


def run(*command: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def image_present(reference: str) -> bool:
    result = subprocess.run(
        ["docker", "image", "inspect", reference], capture_output=True, check=False
    )
    return result.returncode == 0


def choose_base_images() -> dict[str, str]:
    chosen = {key: os.environ.get(key, "") for key in PUBLIC}
    if all(chosen.values()):
        return chosen
    if all(image_present(image) for image in PUBLIC.values()):
        return PUBLIC
    if not all(image_present(image) for image in LOCAL.values()):
        run(sys.executable, "scripts/images.py", "base")
    return LOCAL


def choose_traefik_image() -> str:
    """TRAEFIK_IMAGE, else the public image when present, else kit/traefik built here."""
    chosen = os.environ.get("TRAEFIK_IMAGE", "")
    if chosen:
        return chosen
    if image_present(PUBLIC_TRAEFIK_IMAGE):
        return PUBLIC_TRAEFIK_IMAGE
    with Progress(mode=Mode.PLAIN) as progress:  # shown with the test's output if it fails
        return build_traefik(progress)


def compose_command(project: str, *options: str) -> tuple[str, ...]:
    """``docker compose`` on this repository's compose.yaml and .env.example, as ``project``."""
    return ("docker", "compose", "--env-file", ".env.example", "-p", project, *options)


@pytest.fixture(scope="module")
def compose_project() -> Iterator[tuple[str, dict[str, str]]]:
    """compose.yaml's core and edge (Traefik), up and healthy, torn down (volumes too)
    afterwards."""
    run("scripts/ensure-compose.sh")
    images = choose_base_images()
    run(sys.executable, "scripts/images.py", "build", "--python-image", images["PYTHON_IMAGE"])
    project = f"kit-smoke-{uuid.uuid4().hex[:8]}"
    published_ports = (*SERVICES, "postgres", "gateway", "traefik", "traefik_dashboard")
    env = {
        **os.environ,
        "POSTGRES_IMAGE": images["POSTGRES_IMAGE"],
        "TRAEFIK_IMAGE": choose_traefik_image(),
        # "127.0.0.1:" + ":<port>" = a random host port on loopback
        **{f"{name.upper()}_PUBLISH": "127.0.0.1:" for name in published_ports},
    }
    compose = compose_command(project, "--profile", "edge")
    try:
        run(*compose, "up", "--detach", "--wait", "--wait-timeout", "180", env=env)
        yield project, env
    except AssertionError as error:
        logs = subprocess.run(
            [*compose, "logs", "--no-color", "--tail", "40"],
            capture_output=True, text=True, env=env, cwd=ROOT, check=False,
        )  # fmt: skip
        error.add_note(f"compose logs:\n{logs.stdout}")
        raise
    finally:
        run(*compose, "down", "--volumes", "--remove-orphans", "--timeout", "20", env=env)


def published(project: str, env: dict[str, str], service: str) -> str:
    compose = compose_command(project)
    port = {**SERVICES, **HTTP_ENTRIES}[service]
    return run(*compose, "port", service, str(port), env=env).strip()


@pytest.mark.parametrize("entry", ["gateway", "traefik"])
def test_a_newcomer_logs_in_and_does_crud_through_the_front_door(
    compose_project: tuple[str, dict[str, str]], entry: str
) -> None:
    """Straight to the gateway, and through Traefik as the edge profile deploys it."""
    project, env = compose_project
    csrf = {"X-Requested-With": "smoke"}
    with httpx.Client(base_url=f"http://{published(project, env, entry)}", timeout=10) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.headers["x-trace-id"]  # the gateway's own header, through the proxy too
        login = http.post("/auth/dev/login", json={"email": "smoke@example.com"}, headers=csrf)
        assert login.status_code in (200, 201), login.text
        me = http.get("/user/me").json()
        created = http.post("/entities", json={"name": "through compose"}, headers=csrf)
        assert created.status_code == 201, created.text
        assert created.json()["owner_id"] == me["id"]
        listed = http.get("/entities").json()
        assert [e["name"] for e in listed["entities"]] == ["through compose"]
        entity_id = created.json()["id"]
        assert http.delete(f"/entities/{entity_id}", headers=csrf).status_code == 204
        assert http.post("/logout", headers=csrf).status_code in (200, 204)
        assert http.get("/user/me").status_code == 401


async def test_every_service_is_healthy_and_answers_a_real_call(
    compose_project: tuple[str, dict[str, str]],
) -> None:
    project, env = compose_project
    addresses = {service: published(project, env, service) for service in SERVICES}
    for service, address in addresses.items():
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service

    async with grpc.aio.insecure_channel(addresses["user"]) as channel:
        users = user_pb2_grpc.UserServiceStub(channel)
        created = await users.CreateUser(CreateUserRequestFactory.build(), timeout=10)
        found = await users.GetUserByEmail(
            user_pb2.GetUserByEmailRequest(email=created.user.email.upper()), timeout=10
        )
        assert found.user == created.user

    async with grpc.aio.insecure_channel(addresses["auth"]) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        session = await auth.CreateSession(CreateSessionRequestFactory.build(), timeout=10)
        valid = await auth.ValidateSession(
            auth_pb2.ValidateSessionRequest(token=session.token), timeout=10
        )
        assert valid.session == session.session

    async with grpc.aio.insecure_channel(addresses["dummy"]) as channel:
        dummy = dummy_pb2_grpc.DummyServiceStub(channel)
        # the owner must be a user: dummy asks the user service, container to container
        request = CreateEntityRequestFactory.build(owner_id=created.user.id)
        entity = (await dummy.CreateEntity(request, timeout=10)).entity
        listed = await dummy.ListEntities(
            dummy_pb2.ListEntitiesRequest(owner_id=request.owner_id), timeout=10
        )
        assert list(listed.entities) == [entity]


def test_nothing_is_left_after_down(compose_project: tuple[str, dict[str, str]]) -> None:
    """Runs the teardown of a second, short-lived project and checks what remains."""
    project, env = compose_project
    label = f"label=com.docker.compose.project={project}"
    # while up: containers and a network exist under the project's label
    assert run("docker", "ps", "--quiet", "--filter", label).split()
    second = f"{project}-down"
    compose = compose_command(second)
    run(*compose, "up", "--detach", "--wait", "--wait-timeout", "180", "postgres", env=env)
    run(*compose, "down", "--volumes", "--remove-orphans", "--timeout", "20", env=env)
    second_label = f"label=com.docker.compose.project={second}"
    assert run("docker", "ps", "--all", "--quiet", "--filter", second_label) == ""
    assert run("docker", "network", "ls", "--quiet", "--filter", second_label) == ""
    assert run("docker", "volume", "ls", "--quiet", "--filter", second_label) == ""


def test_every_profile_makes_a_valid_configuration() -> None:
    """Jaeger cannot be pulled here, nor built: its service is validated, not run."""
    run("scripts/ensure-compose.sh")
    config = run(
        "docker", "compose", "--env-file", ".env.example",
        "--profile", "edge", "--profile", "tracing", "config", "--services",
    )  # fmt: skip
    core_services = {"postgres", "auth", "user", "dummy", "gateway"}
    assert set(config.split()) == {*core_services, "traefik", "jaeger"}
    core = run("docker", "compose", "--env-file", ".env.example", "config", "--services")
    assert set(core.split()) == core_services


def test_compose_refuses_to_start_without_a_postgres_password(tmp_path: Path) -> None:
    run("scripts/ensure-compose.sh")
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(
            line
            for line in (ROOT / ".env.example").read_text().splitlines()
            if not line.startswith("POSTGRES_PASSWORD=")
        )
    )
    result = subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "config", "--quiet"],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"},
    )  # fmt: skip
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr
