"""The kit's pytest plugin and the plain context managers beneath it.

The fixtures (``harness_databases``, ``postgres_server``, ``postgres_databases``,
``clean_databases``) come with the plugin; what a ``conftest.py`` or a script imports is
here.
"""

from __future__ import annotations

from harness.config import HarnessConfig
from harness.databases import CleanStrategy, Databases, DatabaseSpec, databases_from_templates
from harness.errors import (
    DatabaseSetupError,
    HarnessError,
    PostgresNotFoundError,
    PostgresStartError,
)
from harness.postgres import (
    PostgresBinaries,
    PostgresServer,
    find_postgres_binaries,
    reap_stale_servers,
    run_postgres,
)

__all__ = [
    "CleanStrategy",
    "DatabaseSetupError",
    "DatabaseSpec",
    "Databases",
    "HarnessConfig",
    "HarnessError",
    "PostgresBinaries",
    "PostgresNotFoundError",
    "PostgresServer",
    "PostgresStartError",
    "databases_from_templates",
    "find_postgres_binaries",
    "reap_stale_servers",
    "run_postgres",
]
