"""--harness-contract-target: the stub a contract suite gets answers from the chosen
target, seen from the other end of its address: this process (in-process), a
`python -m user` process that logs the call (process), or a container of a kit/user
image built from this checkout (its source-digest label) that logs the call (image).

The first test checks the session's own target: in-process under `make test`, the image
in .ci/run's image step (which names this file). The second runs it in a pytest of its
own with the process target, so that each run checks a booted service too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import grpc
import pytest

from contracts.support import expect_status
from harness import SOURCE_DIGEST_LABEL, ContractTarget, ServiceSpec, ServiceStacks
from user.v1 import user_pb2 as pb

if TYPE_CHECKING:
    from fixtures.inprocess import InProcess
    from user.v1.user_pb2_grpc import UserServiceAsyncStub

LISTEN = "0A"  # the state of a listening socket in /proc/net/tcp


def listener_pid(port: int) -> int:
    """The process whose socket listens on TCP ``port`` (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == LISTEN:
                inodes.add(f"socket:[{fields[9]}]")
    assert inodes, f"nothing listens on port {port}"
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):  # a process gone, or not ours to read
            if any(link_of(fd) in inodes for fd in fd_dir.iterdir()):
                return int(fd_dir.parent.name)
    raise AssertionError(f"no process holds the socket listening on port {port}")


def link_of(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:  # closed meanwhile (e.g. the one listing this very folder)
        return ""


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def process_at(address: str) -> tuple[int, list[str]]:
    """The pid and command line of the process listening at ``address``."""
    pid = listener_pid(port_of(address))
    return pid, Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")


def docker_json(*args: str) -> Any:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=30
    )
    return json.loads(result.stdout)


def containers_publishing(address: str) -> list[tuple[list[str], str]]:
    """The tags of the image and the source-digest label of each running container that
    publishes ``address``'s port."""
    ids = subprocess.run(
        ["docker", "ps", "--quiet", "--filter", f"publish={port_of(address)}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    found = []
    for container in ids:
        config = docker_json("inspect", "--format", "{{json .Config}}", container)
        # the image by name, or by id where another checkout moved the name
        tags = docker_json("image", "inspect", "--format", "{{json .RepoTags}}", config["Image"])
        digest = (config.get("Labels") or {}).get(SOURCE_DIGEST_LABEL, "")
        found.append((sorted(tags), digest))
    return found


async def answered_in_log(logs: Callable[[], str], line: str) -> None:
    for _ in range(100):  # the log reaches its file (or docker logs) a moment later
        if line in logs():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{line!r} is not in the service's log:\n{logs()}")


async def test_the_user_stub_reaches_the_sessions_target(
    user_stub: UserServiceAsyncStub,
    harness_contract_target: ContractTarget,
    request: pytest.FixtureRequest,
) -> None:
    await expect_status(
        user_stub.GetUser(pb.GetUserRequest(id=str(uuid4()))), grpc.StatusCode.NOT_FOUND
    )
    answered = "/user.v1.UserService/GetUser NOT_FOUND"
    if harness_contract_target is ContractTarget.IN_PROCESS:
        served: InProcess = request.getfixturevalue("user_service")
        assert listener_pid(port_of(served.address)) == os.getpid()
        print(f"probe: in-process at {served.address}")
        return
    stacks: ServiceStacks = request.getfixturevalue("service_stacks")
    view = stacks.get("user")  # the view the stub's channel came from
    address = view.address("user")
    await answered_in_log(lambda: view.logs("user", 200), answered)
    if harness_contract_target is ContractTarget.PROCESS:
        pid, command = process_at(address)
        assert pid != os.getpid()
        assert command[1:3] == ["-m", "user"], command
        print(f"probe: process {pid} ({' '.join(command)}) at {address}")
        return
    specs: list[ServiceSpec] = request.getfixturevalue("harness_services")
    (user,) = [spec for spec in specs if spec.name == "user"]
    ((tags, digest),) = containers_publishing(address)
    assert digest == user.source_digest, "the container runs other code than this checkout's"
    assert any(tag.startswith("kit/user:") for tag in tags), tags
    print(f"probe: container of kit/user (this checkout's code) at {address}")


ROOT = Path(__file__).resolve().parent.parent


# its run picks its own target (and backend): CI's second run, on the process backend,
# would repeat it exactly
@pytest.mark.inner_run
def test_the_process_target_in_a_run_of_its_own(harness_contract_target: ContractTarget) -> None:
    if harness_contract_target is ContractTarget.PROCESS:
        pytest.skip("this session's target is process: the test above checked it")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"{Path(__file__).relative_to(ROOT)}::test_the_user_stub_reaches_the_sessions_target",
            "--harness-contract-target=process",
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
    assert "probe: process " in output
    assert "-m user) at 127.0.0.1:" in output
