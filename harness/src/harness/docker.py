"""Is there a Docker engine to talk to? Asked once per run, answered with the reason."""

from __future__ import annotations

import functools
import shutil
import subprocess


@functools.cache
def docker_unavailable() -> str | None:
    """None when ``docker info`` answers; otherwise why not, in one line."""
    docker = shutil.which("docker")
    if docker is None:
        return "the docker command is not installed"
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 15 s"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return lines[-1] if lines else f"`docker info` exited with {result.returncode}"
    return None
