"""The harness's own tests: unit tests, and pytester runs of the plugin as a user runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from harness.postgres import default_cache_dir

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session", autouse=True)
def _shared_cluster_cache() -> Iterator[None]:
    # pytester points HOME at each test's own directory, which would make every inner run
    # miss the initdb cache; pin the cache to the user's one, found before that happens.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_CACHE_DIR", str(default_cache_dir()))
        yield
