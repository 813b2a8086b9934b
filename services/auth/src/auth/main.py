"""Start the auth service: the composition root (settings, pool, HTTP client, providers)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from importlib.resources import files

import asyncpg
import httpx

from auth.oauth import build_providers
from auth.repository import PostgresOauthAccountRepository, PostgresSessionRepository
from auth.server import AuthDependencies, registration
from auth.settings import AuthSettings
from servicekit.runner import ServiceDefinition
from servicekit.runner import main as run_main
from servicekit.server import ServiceRegistration


def build(
    pool: asyncpg.Pool, settings: AuthSettings, resources: AsyncExitStack
) -> Sequence[ServiceRegistration]:
    # One client for every provider call; each call sets its own timeout.
    http = httpx.AsyncClient(follow_redirects=False)
    resources.push_async_callback(http.aclose)
    providers = build_providers(http, google=settings.google, github=settings.github)
    dependencies = AuthDependencies(
        sessions=PostgresSessionRepository(pool),
        accounts=PostgresOauthAccountRepository(pool),
        providers=providers,
    )
    return [registration(dependencies)]


DEFINITION = ServiceDefinition[AuthSettings](
    name="auth", migrations=files("auth") / "migrations", build=build
)


def main() -> None:
    run_main(DEFINITION, AuthSettings)
