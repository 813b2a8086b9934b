"""This repository's harness wiring: its databases, and its services for the contract suites.

The contract suites in contracts/ ask for a stub (``dummy_stub``, ``user_stub``,
``auth_stub``) and nothing else. Here each stub reaches the real service on the contract
target (``--harness-contract-target``): by default started in-process on a free port
over its real repository and the harness's Postgres, its OAuth providers the HTTP-level
fakes of fixtures/oauth.py reached through an in-memory transport; with ``process`` or
``image``, the service booted by the harness (``service_stacks``) as ``python -m
<service>`` or from its image, logging in with the stacks' provider fakes. Each test
starts from empty databases.

The stacks (``@pytest.mark.stack``) boot every service of the workspace, the gateway
included; their auth service logs in with the same fakes served over HTTP
(``http_fake_server``), and ``oauth_providers`` gives a test those fakes.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

import asyncpg
import grpc
import httpx
import pytest

from auth.oauth import GitHubSettings, GoogleSettings, Providers, build_providers
from auth.repository import PostgresOauthAccountRepository, PostgresSessionRepository
from auth.server import AuthDependencies
from auth.server import registration as auth_registration
from dummy.owners import UserServiceOwners
from dummy.repository import PostgresEntityRepository
from dummy.server import registration as dummy_registration
from fixtures.contract_channels import contract_channel
from fixtures.factories import CreateUserRequestFactory
from fixtures.image_builds import PLUGIN_NAME as IMAGE_BUILDS_PLUGIN
from fixtures.image_builds import ImageBuilds, image_builds
from fixtures.inprocess import InProcess, NewOwner, serve_in_process
from fixtures.oauth import FakeGitHub, FakeGoogle, settings_env
from harness import (
    BackendChoice,
    CleanStrategy,
    ContractTarget,
    Databases,
    DatabaseSpec,
    HarnessConfig,
    HttpFakeServer,
    PostgresServer,
    ServiceSpec,
    resolve_backend,
    workspace_services,
)
from servicekit.migrations import migrate
from user import UserClient
from user.repository import PostgresUserRepository
from user.server import registration as user_registration

if TYPE_CHECKING:
    from auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from dummy.v1.dummy_pb2_grpc import DummyServiceAsyncStub
    from user.v1.user_pb2_grpc import UserServiceAsyncStub

from auth.v1 import auth_pb2, auth_pb2_grpc
from dummy.v1 import dummy_pb2_grpc
from user.v1 import user_pb2_grpc

# tests/test_images_progress.py runs sessions of its own (the harness's tests enable it too)
pytest_plugins = ["pytester"]


ROOT = Path(__file__).resolve().parent


def service_databases() -> list[str]:
    """One database per gRPC service of the workspace ([tool.kit.service] in its
    pyproject.toml), named after it: a service written by scripts/new_service.py has its
    own at once."""
    return [spec.database for spec in workspace_services(ROOT) if spec.database]


def pytest_configure(config: pytest.Config) -> None:
    """The service images, made current once per run when the stacks run on docker."""
    command = [
        sys.executable,
        str(ROOT / "scripts/images.py"),
        "--progress",
        "events",
        "build",
        "--auto-base",
    ]
    config.pluginmanager.register(
        ImageBuilds(config, command, uses_docker=stacks_use_docker), IMAGE_BUILDS_PLUGIN
    )


def stacks_use_docker(config: pytest.Config) -> bool:
    return resolve_backend(HarnessConfig.from_pytest(config).backend) is BackendChoice.DOCKER


@dataclass(frozen=True)
class OauthProviders:
    """The fake Google and GitHub that the auth service of every stack logs in with."""

    google: FakeGoogle
    github: FakeGitHub

    def env(self) -> dict[str, str]:
        """auth's AUTH_GOOGLE_* and AUTH_GITHUB_* settings pointing at these fakes."""
        return {**settings_env(self.google.settings()), **settings_env(self.github.settings())}


@pytest.fixture(scope="session")
def stack_oauth_providers(http_fake_server: HttpFakeServer) -> OauthProviders:
    """Google and GitHub fakes served over HTTP where the stacks' services reach them."""
    url = http_fake_server.url
    google = FakeGoogle(base_url=f"{url}/google")
    github = FakeGitHub(login_base_url=f"{url}/github", api_base_url=f"{url}/github-api")
    http_fake_server.mount("/google", google.handle)
    http_fake_server.mount("/github", github.handle)
    http_fake_server.mount("/github-api", github.handle)
    return OauthProviders(google, github)


@pytest.fixture
def oauth_providers(
    stack_oauth_providers: OauthProviders, http_fakes: HttpFakeServer
) -> OauthProviders:
    """The stacks' provider fakes, as constructed (a test may reshape the GitHub account)."""
    stack_oauth_providers.google.reset()
    stack_oauth_providers.github.reset()
    return stack_oauth_providers


@pytest.fixture(scope="session")
def harness_services(
    request: pytest.FixtureRequest,
    harness_backend_name: BackendChoice,
    stack_oauth_providers: OauthProviders,
) -> list[ServiceSpec]:
    """This workspace's services ([tool.kit.service] in their pyproject.toml), auth with
    Google and GitHub configured against the HTTP fakes. On the docker backend their
    images are current: built (or reused when unchanged) before the first test that
    needs them, the build's progress on the terminal (fixtures/image_builds.py)."""
    if harness_backend_name is BackendChoice.DOCKER:
        image_builds(request.config).require()
    return [
        replace(spec, env={**spec.env, **stack_oauth_providers.env()})
        if spec.name == "auth"
        else spec
        for spec in workspace_services(ROOT)
    ]


@pytest.fixture(scope="session")
def harness_databases() -> list[DatabaseSpec]:
    """One database per service, migrated by the service's own migrations."""
    return [
        DatabaseSpec(name, functools.partial(migrate, folder=files(name) / "migrations"))
        for name in service_databases()
    ]


@pytest.fixture(scope="session")
async def service_pools(postgres_databases: Databases) -> AsyncIterator[dict[str, asyncpg.Pool]]:
    pools = {
        name: await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        for name, dsn in postgres_databases.dsns.items()
    }
    yield pools
    for pool in pools.values():
        await pool.close()


@pytest.fixture
async def clean_service_state(
    clean_databases: Mapping[str, str],
    postgres_databases: Databases,
    service_pools: dict[str, asyncpg.Pool],
) -> None:
    """Empty databases for this test, and pools that only hold connections to them."""
    if postgres_databases.strategy is CleanStrategy.CLONE:
        # the databases were dropped and re-created: old connections point at nothing
        for pool in service_pools.values():
            await pool.expire_connections()


@pytest.fixture(scope="session")
async def dummy_channel(
    service_pools: dict[str, asyncpg.Pool], user_channel: grpc.aio.Channel
) -> AsyncIterator[grpc.aio.Channel]:
    """The dummy service, asking the in-process user service about owners."""
    repository = PostgresEntityRepository(service_pools["dummy"])
    owners = UserServiceOwners(UserClient(user_channel))
    async for served in serve_in_process([dummy_registration(repository, owners)]):
        yield served.channel


@pytest.fixture(scope="session")
async def user_service(service_pools: dict[str, asyncpg.Pool]) -> AsyncIterator[InProcess]:
    repository = PostgresUserRepository(service_pools["user"])
    async for served in serve_in_process([user_registration(repository)]):
        yield served


@pytest.fixture(scope="session")
def user_channel(user_service: InProcess) -> grpc.aio.Channel:
    return user_service.channel


@pytest.fixture(scope="session")
def fake_google() -> FakeGoogle:
    return FakeGoogle()


@pytest.fixture(scope="session")
def fake_github() -> FakeGitHub:
    return FakeGitHub()


@pytest.fixture(scope="session")
async def provider_http(
    fake_google: FakeGoogle, fake_github: FakeGitHub
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose every request is answered by the provider fakes."""
    google_host = httpx.URL(fake_google.token_endpoint).host

    def route(request: httpx.Request) -> httpx.Response:
        fake = fake_google if request.url.host == google_host else fake_github
        return fake.handle(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(route)) as http:
        yield http


async def serve_auth(
    pools: dict[str, asyncpg.Pool], providers: Providers
) -> AsyncIterator[grpc.aio.Channel]:
    dependencies = AuthDependencies(
        sessions=PostgresSessionRepository(pools["auth"]),
        accounts=PostgresOauthAccountRepository(pools["auth"]),
        providers=providers,
    )
    async for served in serve_in_process([auth_registration(dependencies)]):
        yield served.channel


@pytest.fixture(scope="session")
async def auth_channel(
    service_pools: dict[str, asyncpg.Pool],
    provider_http: httpx.AsyncClient,
    fake_google: FakeGoogle,
    fake_github: FakeGitHub,
) -> AsyncIterator[grpc.aio.Channel]:
    providers = build_providers(
        provider_http, google=fake_google.settings(), github=fake_github.settings()
    )
    async for channel in serve_auth(service_pools, providers):
        yield channel


@pytest.fixture(scope="session")
async def auth_without_providers_channel(
    service_pools: dict[str, asyncpg.Pool], provider_http: httpx.AsyncClient
) -> AsyncIterator[grpc.aio.Channel]:
    providers = build_providers(
        provider_http,
        google=GoogleSettings(client_id="", client_secret=""),
        github=GitHubSettings(client_id="", client_secret=""),
    )
    async for channel in serve_auth(service_pools, providers):
        yield channel


# ---------------------------------------------------------------- what the contracts ask for


@pytest.fixture
def dummy_stub(
    request: pytest.FixtureRequest, harness_contract_target: ContractTarget
) -> DummyServiceAsyncStub:
    channel = contract_channel(
        request, harness_contract_target, "dummy", in_process="dummy_channel"
    )
    return dummy_pb2_grpc.DummyServiceStub(channel)


@pytest.fixture
def contract_channels(
    request: pytest.FixtureRequest, harness_contract_target: ContractTarget
) -> dict[str, grpc.aio.Channel]:
    """A channel to each service on the contract target, over empty databases (for the
    suites over every service: hostile input, fuzzing). The user service is the one dummy
    asks, as ``new_owner``'s is."""
    target = harness_contract_target
    return {
        "auth": contract_channel(request, target, "auth", in_process="auth_channel"),
        "user": contract_channel(request, target, "user", in_process="user_channel", stack="dummy"),
        "dummy": contract_channel(request, target, "dummy", in_process="dummy_channel"),
    }


@pytest.fixture
def new_owner(request: pytest.FixtureRequest, harness_contract_target: ContractTarget) -> NewOwner:
    """A new user of the user service the dummy service asks: its id owns entities."""
    users = UserClient(
        contract_channel(
            request, harness_contract_target, "user", in_process="user_channel", stack="dummy"
        )
    )

    async def create() -> str:
        created = await users.create_user(CreateUserRequestFactory.build())
        return created.user.id

    return create


@pytest.fixture
def user_stub(
    request: pytest.FixtureRequest, harness_contract_target: ContractTarget
) -> UserServiceAsyncStub:
    channel = contract_channel(request, harness_contract_target, "user", in_process="user_channel")
    return user_pb2_grpc.UserServiceStub(channel)


@pytest.fixture
def user_pool(service_pools: dict[str, asyncpg.Pool], clean_service_state: None) -> asyncpg.Pool:
    return service_pools["user"]


@pytest.fixture
def auth_stub(
    request: pytest.FixtureRequest, harness_contract_target: ContractTarget
) -> AuthServiceAsyncStub:
    channel = contract_channel(request, harness_contract_target, "auth", in_process="auth_channel")
    return auth_pb2_grpc.AuthServiceStub(channel)


# auth's settings with no OAuth provider configured (its booted variant's environment)
NO_PROVIDERS_ENV = {
    **settings_env(GoogleSettings(client_id="", client_secret="")),
    **settings_env(GitHubSettings(client_id="", client_secret="")),
}


@pytest.fixture
def auth_stub_without_providers(
    request: pytest.FixtureRequest, harness_contract_target: ContractTarget
) -> AuthServiceAsyncStub:
    """An auth service on which no OAuth provider is configured."""
    channel = contract_channel(
        request,
        harness_contract_target,
        "auth",
        in_process="auth_without_providers_channel",
        env=NO_PROVIDERS_ENV,
    )
    return auth_pb2_grpc.AuthServiceStub(channel)


@pytest.fixture
def oauth_consent(
    request: pytest.FixtureRequest, harness_contract_target: ContractTarget
) -> Callable[[auth_pb2.Provider.ValueType, str], str]:
    """The user consents at the provider: authorization URL in, callback code out. The
    fakes are those the target's auth service logs in with."""
    if harness_contract_target is ContractTarget.IN_PROCESS:
        fakes = OauthProviders(
            request.getfixturevalue("fake_google"), request.getfixturevalue("fake_github")
        )
    else:
        fakes = request.getfixturevalue("oauth_providers")
    google, github = fakes.google, fakes.github

    def consent(provider: auth_pb2.Provider.ValueType, authorization_url: str) -> str:
        if provider == auth_pb2.PROVIDER_GOOGLE:
            return google.authorize(authorization_url)
        return github.authorize(authorization_url)

    return consent


@pytest.fixture
async def fresh_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """The DSN of a new, empty database (no migrations: what a service meets on its first
    start), dropped after the test."""
    name = f"fresh_{uuid4().hex}"
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_server.dsn(name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
