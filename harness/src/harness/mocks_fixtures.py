"""The mocks fixture; re-exported by the plugin module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.mocks import GrpcMocks


@pytest.fixture
def grpc_mocks() -> Iterator[GrpcMocks]:
    """Make mocks with ``grpc_mocks.of(UserServiceStub)``; each is stopped at teardown,
    and the test fails if a mock hit an error while answering (a broken ``responds``)."""
    with GrpcMocks() as mocks:
        yield mocks
        mocks.assert_no_errors()
