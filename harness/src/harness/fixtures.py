"""The harness's fixtures; :mod:`harness.plugin` re-exports them to pytest.

They only wrap the context managers of :mod:`harness.postgres` and
:mod:`harness.databases`. Each pytest-xdist worker runs its own server, so workers
never share a database.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from harness.config import HarnessConfig, get_config
from harness.databases import Databases, DatabaseSpec, databases_from_templates
from harness.postgres import PostgresBinaries, PostgresServer, find_postgres_binaries, run_postgres

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

_BINARIES_KEY = pytest.StashKey[PostgresBinaries | Exception]()


def postgres_binaries(config: pytest.Config) -> PostgresBinaries:
    """The server binaries this run uses, looked up once per run (the header shows them too)."""
    if _BINARIES_KEY not in config.stash:
        try:
            config.stash[_BINARIES_KEY] = find_postgres_binaries(get_config(config).postgres_bin)
        except Exception as error:  # kept so that every fixture reports the same error
            config.stash[_BINARIES_KEY] = error
    found = config.stash[_BINARIES_KEY]
    if isinstance(found, Exception):
        raise found
    return found


def xdist_worker() -> str:
    """This process's pytest-xdist worker id (``gw0``...), or ``main`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def harness_config(pytestconfig: pytest.Config) -> HarnessConfig:
    """The effective harness settings (command line over ini)."""
    return get_config(pytestconfig)


@pytest.fixture(scope="session")
def harness_databases() -> list[DatabaseSpec]:
    """Override this to declare the databases your tests need.

    Return one :class:`~harness.DatabaseSpec` per database, each with the coroutine that
    migrates it, e.g. in your ``conftest.py``::

        @pytest.fixture(scope="session")
        def harness_databases() -> list[DatabaseSpec]:
            return [DatabaseSpec("user", lambda dsn: migrate(dsn, MIGRATIONS))]

    Default: no database.
    """
    return []


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> Iterator[PostgresServer]:
    """A PostgreSQL server of this session (of this xdist worker), stopped at its end."""
    with run_postgres(postgres_binaries(pytestconfig), label=xdist_worker()) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_databases(
    postgres_server: PostgresServer,
    harness_databases: list[DatabaseSpec],
    harness_config: HarnessConfig,
) -> Iterator[Databases]:
    """The declared databases: templates migrated once, working databases created from them.

    Their content is whatever earlier tests left; use :func:`clean_databases` in tests.
    """
    with databases_from_templates(
        postgres_server, harness_databases, harness_config.db_reset
    ) as databases:
        yield databases


@pytest.fixture
def clean_databases(postgres_databases: Databases) -> Mapping[str, str]:
    """Every declared database in its just-migrated state: a mapping of name to DSN."""
    return postgres_databases.clean()
