"""The harness's own tests: unit tests, and pytester runs of the plugin as a user runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from harness.postgres import default_cache_dir

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest_plugins = ["pytester"]


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
