"""The local base images, for a machine that reaches no registry: built from Debian
packages with the Dockerfiles shipped in this package (``harness/images/base/``).

- ``kit/debian:bookworm``: debootstrap from the machine's apt mirror, then ``docker
  import`` (``base/debian/build.sh``; needs root, a few minutes the first time);
- ``kit/python:3.11-slim``: Debian's Python 3.11 with the interface of the public
  ``python:3.11-slim`` that service images use (``python``, ``python3 -m venv``);
- ``kit/postgres:15``: the interface of the public ``postgres`` image that the docker
  backend uses (``POSTGRES_*`` variables, ``pg_isready``).

    kit-images base [--force]
"""

from __future__ import annotations

import functools
from pathlib import Path

from harness.errors import ImageError
from harness.images.engine import docker_build, image_id, image_size_mb, side_by_side
from harness.images.progress import Progress, run_streamed

__all__ = [
    "BASE_CONTEXTS",
    "LOCAL_DEBIAN_IMAGE",
    "LOCAL_POSTGRES_IMAGE",
    "LOCAL_PYTHON_IMAGE",
    "PUBLIC_PYTHON_IMAGE",
    "auto_base",
    "build_base",
    "result_line",
]

PUBLIC_PYTHON_IMAGE = "python:3.11-slim"
LOCAL_DEBIAN_IMAGE = "kit/debian:bookworm"
LOCAL_PYTHON_IMAGE = "kit/python:3.11-slim"
LOCAL_POSTGRES_IMAGE = "kit/postgres:15"
# the build contexts of the base images, shipped in the package
BASE_CONTEXTS = Path(__file__).resolve().parent / "base"


def debootstrap_detail(line: str) -> str | None:
    """debootstrap's ``I: Retrieving libc6 2.36-9`` lines, without the prefix."""
    return line[3:] if line.startswith("I: ") else line


def result_line(progress: Progress, verb: str, tag: str, seconds: float, extra: str = "") -> None:
    size = image_size_mb(tag)
    progress.result(f"{verb} {tag:<28} {seconds:6.1f}s  {size:6.1f} MB  {extra}".rstrip())


def build_base(progress: Progress, *, force: bool, why: str = "") -> None:
    reason = f" ({why})" if why else ""
    progress.note(
        f"base images: {LOCAL_DEBIAN_IMAGE} (debootstrap, a few minutes the first time), "
        f"{LOCAL_PYTHON_IMAGE}, {LOCAL_POSTGRES_IMAGE}{reason}"
    )
    if force or image_id(LOCAL_DEBIAN_IMAGE) is None:
        script = BASE_CONTEXTS / "debian" / "build.sh"
        with progress.step(f"{LOCAL_DEBIAN_IMAGE}: debootstrap") as step:
            # through bash: an installed package need not keep the script's mode bits
            finished = run_streamed(
                step, ["bash", str(script), LOCAL_DEBIAN_IMAGE], detail=debootstrap_detail
            )
            if finished.returncode != 0:
                raise ImageError(f"{script} failed; its last lines:\n{finished.tail}")
        result_line(progress, "built ", LOCAL_DEBIAN_IMAGE, step.seconds)
    else:
        result_line(progress, "reused", LOCAL_DEBIAN_IMAGE, 0.0)
    # Both come from kit/debian alone: built side by side (harness.images.service_images
    # does the same with the service images).
    side_by_side(
        [
            functools.partial(_build_from_debian, progress, tag, folder)
            for tag, folder in ((LOCAL_PYTHON_IMAGE, "python"), (LOCAL_POSTGRES_IMAGE, "postgres"))
        ],
        at_once=2,
    )


def _build_from_debian(progress: Progress, tag: str, folder: str) -> None:
    context = BASE_CONTEXTS / folder
    with progress.step(f"{tag}: docker build") as step:
        docker_build(
            step, context, context / "Dockerfile", [tag], {"DEBIAN_IMAGE": LOCAL_DEBIAN_IMAGE}
        )
    result_line(progress, "built ", tag, step.seconds, "(layers cached when unchanged)")


def auto_base(progress: Progress) -> str:
    """The public Python base when present, else the local one (built when missing)."""
    if image_id(PUBLIC_PYTHON_IMAGE) is not None:
        return PUBLIC_PYTHON_IMAGE
    missing = [i for i in (LOCAL_PYTHON_IMAGE, LOCAL_POSTGRES_IMAGE) if image_id(i) is None]
    if missing:
        build_base(progress, force=False, why=f"no image {', '.join(missing)}")
    return LOCAL_PYTHON_IMAGE
