"""harness.grpc_runtime: the grpcio settings every service process starts with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import Workspace
from harness.grpc_runtime import GRPC_RUNTIME_ENV, with_grpc_runtime
from harness.images.dockerfiles import dockerfile

ROOT = Path(__file__).resolve().parents[2]

# A channel and a call: grpcio reads GRPC_EXPERIMENTS when grpc is imported and says
# "Unknown experiment" for a name it does not have.
A_CALL = """
import asyncio, grpc
async def call():
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        try:
            await channel.unary_unary("/a.B/C")(b"", timeout=0.2)
        except grpc.aio.AioRpcError:
            pass
asyncio.run(call())
"""


def grpc_says(experiments: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-c", A_CALL],
        env={"GRPC_EXPERIMENTS": experiments, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return finished.stderr


@pytest.mark.parametrize(
    ("experiments", "known"),
    [
        (GRPC_RUNTIME_ENV["GRPC_EXPERIMENTS"], True),
        ("-no_such_experiment_anywhere", False),  # what a grpcio without them would say
    ],
    ids=["the kit's", "an unknown one"],
)
def test_the_installed_grpcio_knows_every_experiment_the_kit_turns_off(
    experiments: str, known: bool
) -> None:
    assert ("Unknown experiment" not in grpc_says(experiments)) is known


def test_the_callers_own_setting_wins_and_the_kits_fills_in_the_rest() -> None:
    assert with_grpc_runtime({"A": "1"}) == {**GRPC_RUNTIME_ENV, "A": "1"}
    assert with_grpc_runtime({"GRPC_EXPERIMENTS": "mine"})["GRPC_EXPERIMENTS"] == "mine"


def test_every_service_image_starts_with_the_settings() -> None:
    workspace = Workspace.read(ROOT)
    for service in [*workspace.services(), *workspace.http_services()]:
        text = dockerfile(workspace, service)
        for name, value in GRPC_RUNTIME_ENV.items():
            assert f'{name}="{value}"' in text, service.name
