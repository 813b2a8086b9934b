"""The harness's wiring for this project: its databases and its services."""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

import pytest

from harness import DatabaseSpec, ServiceSpec, workspace_services
from servicekit.migrations import migrate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def harness_databases() -> list[DatabaseSpec]:
    """A database per service, migrated by the service's own migrations."""
    return [
        DatabaseSpec(name, functools.partial(migrate, folder=files(name) / "migrations"))
        for name in ("notes", "tags")
    ]


@pytest.fixture(scope="session")
def harness_services() -> list[ServiceSpec]:
    """[tool.kit.services] of pyproject.toml: module, ports, calls, database, proto, and
    the image `kit-images build` tags (outside/<name>:local) with its source digest."""
    return workspace_services(ROOT)
