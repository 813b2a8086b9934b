"""Start the dummy service: the composition root (settings, pool, user client, server)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from importlib.resources import files

import asyncpg

from dummy.owners import UserServiceOwners
from dummy.repository import PostgresEntityRepository
from dummy.server import registration
from dummy.settings import DummySettings
from servicekit.channels import service_channel
from servicekit.runner import ServiceDefinition
from servicekit.runner import main as run_main
from servicekit.server import ServiceRegistration
from user import UserClient


def build(
    pool: asyncpg.Pool, settings: DummySettings, resources: AsyncExitStack
) -> Sequence[ServiceRegistration]:
    channel = service_channel(settings.user_address)
    resources.push_async_callback(channel.close, None)
    owners = UserServiceOwners(UserClient(channel, timeout=settings.user_timeout_seconds))
    return [registration(PostgresEntityRepository(pool), owners)]


DEFINITION = ServiceDefinition[DummySettings](
    name="dummy", migrations=files("dummy") / "migrations", build=build
)


def main() -> None:
    run_main(DEFINITION, DummySettings)
