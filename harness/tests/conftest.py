"""The harness's own tests: unit tests, and pytester runs of the plugin as a user runs it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.postgres import default_cache_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

# What a user of this repository writes for stacks of user and dummy: the inner runs' ini,
# and a conftest naming the services and one migrated database for each.
WORKSPACE_INI = """
[pytest]
addopts = --strict-markers --strict-config -p no:cacheprovider
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
xfail_strict = true
filterwarnings = error
"""

WORKSPACE_CONFTEST = f"""
import functools
from importlib.resources import files
from pathlib import Path

import pytest

from harness import DatabaseSpec, workspace_services
from servicekit.migrations import migrate

ROOT = Path({str(ROOT)!r})


@pytest.fixture(scope="session")
def harness_services():
    return workspace_services(ROOT)


@pytest.fixture(scope="session")
def harness_databases():
    return [
        DatabaseSpec(name, functools.partial(migrate, folder=files(name) / "migrations"))
        for name in ("user", "dummy")
    ]
"""


@pytest.fixture
def workspace_project(pytester: pytest.Pytester) -> Callable[[str], pytest.Pytester]:
    """Writes the inner project's ini (with ``extra_ini`` lines) and conftest."""

    def write(extra_ini: str = "") -> pytest.Pytester:
        pytester.makeini(WORKSPACE_INI + extra_ini)
        pytester.makeconftest(WORKSPACE_CONFTEST)
        return pytester

    return write


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # An inner run's backend is its own (its option or ini): running it again under
    # another outer --harness-backend repeats it exactly, so CI's second run (the process
    # backend, after make test on docker) deselects these with -m "not inner_run".
    for item in items:
        if "pytester" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.inner_run)


@pytest.fixture(scope="session", autouse=True)
def _shared_cluster_cache() -> Iterator[None]:
    # pytester points HOME at each test's own directory, which would make every inner run
    # miss the initdb cache; pin the cache to the user's one, found before that happens.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_CACHE_DIR", str(default_cache_dir()))
        yield
