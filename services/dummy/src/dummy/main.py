"""Start the dummy service: the composition root (settings, pool, repository, server)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from importlib.resources import files

import asyncpg

from dummy.repository import PostgresEntityRepository
from dummy.server import registration
from dummy.settings import DummySettings
from servicekit.runner import ServiceDefinition
from servicekit.runner import main as run_main
from servicekit.server import ServiceRegistration


def build(
    pool: asyncpg.Pool, settings: DummySettings, resources: AsyncExitStack
) -> Sequence[ServiceRegistration]:
    return [registration(PostgresEntityRepository(pool))]


DEFINITION = ServiceDefinition[DummySettings](
    name="dummy", migrations=files("dummy") / "migrations", build=build
)


def main() -> None:
    run_main(DEFINITION, DummySettings)
