"""Start the user service: the composition root (settings, pool, repository, server)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from importlib.resources import files

import asyncpg

from servicekit.runner import ServiceDefinition
from servicekit.runner import main as run_main
from servicekit.server import ServiceRegistration
from user.repository import PostgresUserRepository
from user.server import registration
from user.settings import UserSettings


def build(
    pool: asyncpg.Pool, settings: UserSettings, resources: AsyncExitStack
) -> Sequence[ServiceRegistration]:
    return [registration(PostgresUserRepository(pool))]


DEFINITION = ServiceDefinition[UserSettings](
    name="user", migrations=files("user") / "migrations", build=build
)


def main() -> None:
    run_main(DEFINITION, UserSettings)
