"""What the image builder asks of Docker and uv: image facts, a build with its progress,
and one build at a time per machine (an fcntl lock)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from harness.errors import ImageError
from harness.images.progress import Progress, Step, duration, run_streamed

T = TypeVar("T")

__all__ = [
    "DEFAULT_LOCK_FILE",
    "build_lock",
    "docker_build",
    "docker_build_detail",
    "image_id",
    "image_labels",
    "image_size_mb",
    "run",
    "side_by_side",
    "uv_executable",
]

DEFAULT_LOCK_FILE = Path(tempfile.gettempdir()) / "kit-images.lock"
LOCK_WAIT_SECONDS = 3600.0
DETAIL_CHARACTERS = 120  # of a step's detail line


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def image_id(reference: str) -> str | None:
    result = run(["docker", "image", "inspect", "--format", "{{.Id}}", reference])
    return result.stdout.strip() if result.returncode == 0 else None


def image_labels(reference: str) -> dict[str, str] | None:
    """The image's labels ({} when it has none), None when there is no such image."""
    result = run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", reference])
    if result.returncode != 0:
        return None
    return json.loads(result.stdout) or {}


def image_size_mb(reference: str) -> float:
    size = run(["docker", "image", "inspect", "--format", "{{.Size}}", reference]).stdout
    return int(size.strip() or 0) / 1e6


def docker_build_detail(line: str) -> str | None:
    """The classic builder's ``Step 5/14 : RUN ...`` lines: the step in progress (a
    long instruction, a label of JSON, cut)."""
    if not line.startswith("Step "):
        return None
    return line if len(line) <= DETAIL_CHARACTERS else line[: DETAIL_CHARACTERS - 1] + "…"


def docker_build(
    step: Step,
    context: Path,
    dockerfile_path: Path,
    tags: list[str],
    args: dict[str, str],
    labels: dict[str, str] | None = None,
) -> None:
    command = ["docker", "build", "-f", str(dockerfile_path)]
    for key, value in args.items():
        command += ["--build-arg", f"{key}={value}"]
    for key, value in (labels or {}).items():
        command += ["--label", f"{key}={value}"]
    for tag in tags:
        command += ["-t", tag]
    # No buildx on every machine: the classic builder is enough for these Dockerfiles.
    finished = run_streamed(
        step,
        [*command, str(context)],
        detail=docker_build_detail,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    if finished.returncode != 0:
        raise ImageError(f"docker build of {tags[0]} failed; its last lines:\n{finished.tail}")


def side_by_side(builds: Sequence[Callable[[], T]], at_once: int) -> list[T]:
    """Each of ``builds`` in a thread of its own, ``at_once`` at a time: their results in
    order, the first failure raised once every one has ended (none is left half done)."""
    with ThreadPoolExecutor(at_once, thread_name_prefix="image-build") as pool:
        running = [pool.submit(build) for build in builds]
    return [build.result() for build in running]  # the pool's exit waited for them all


def uv_executable(root: Path) -> str:
    """uv itself: named by `uv run` in $UV, else on PATH, else the kit's Makefile's
    ``<root>/.tools/bin/uv``, else the one the `uv` Python package installed."""
    tools = root / ".tools" / "bin" / "uv"
    found = os.environ.get("UV") or shutil.which("uv") or (str(tools) if tools.exists() else "")
    if not found:
        with contextlib.suppress(ImportError, FileNotFoundError):
            from uv import find_uv_bin  # type: ignore[import-not-found, unused-ignore]

            found = str(find_uv_bin())
    if not found:
        raise ImageError(
            "uv not found (it exports requirements and fetches wheels): put it on PATH or "
            "`pip install uv` into this environment"
        )
    return found


@contextlib.contextmanager
def build_lock(lock_file: Path, progress: Progress) -> Iterator[None]:
    """Hold the machine's image-build lock; wait (saying so) while another build has it.
    Two builds at once would race to tag the same images and share two cores."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            with progress.step(f"waiting for another image build ({holder})") as step:
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if step.seconds > LOCK_WAIT_SECONDS:
                            raise ImageError(
                                f"another image build ({holder}) held {lock_file} for over "
                                f"{duration(LOCK_WAIT_SECONDS)}; if it is gone, delete the file"
                            ) from None
                        time.sleep(0.5)
            progress.note(f"the other image build finished after {duration(step.seconds)}")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, {' '.join(sys.argv)}, since {time.strftime('%H:%M:%S')}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
