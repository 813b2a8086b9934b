"""--harness-contract-target: the stubs of the contract suites reach the chosen target.

tests/contract_target_probe.py runs in a pytest of its own per target (the choice is a
session's) and checks the other end of its stub's address: this process (in-process),
a `python -m user` process that logged the call (process), or the kit/user:local
container that did (image)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tests" / "contract_target_probe.py"

pytestmark = pytest.mark.integration  # boots the service: in this process, or as a stack

TARGETS = [
    pytest.param("in-process", "probe: in-process at 127.0.0.1:", id="in-process"),
    pytest.param("process", "probe: process ", id="process"),
    pytest.param(
        "image", "probe: container of kit/user:local", id="image", marks=pytest.mark.docker
    ),
]


@pytest.mark.parametrize(("target", "seen"), TARGETS)
def test_the_contract_stub_reaches_the_chosen_target(target: str, seen: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(PROBE),
            f"--harness-contract-target={target}",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            "-s",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in output
    assert seen in output
