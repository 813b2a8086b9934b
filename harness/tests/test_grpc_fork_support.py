"""The harness turns grpc's fork support off in the test process (harness/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("given", "expected"), [(None, "false"), ("true", "true")])
def test_importing_the_harness_turns_grpc_fork_support_off_unless_set(
    given: str | None, expected: str
) -> None:
    # the harness forks Postgres and services while its gRPC threads are busy (see
    # harness/__init__.py); a user's own choice stands
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    if given is not None:
        env["GRPC_ENABLE_FORK_SUPPORT"] = given
    code = "import harness, os; print(os.environ['GRPC_ENABLE_FORK_SUPPORT'])"
    finished = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert finished.stdout.strip() == expected, finished.stderr
