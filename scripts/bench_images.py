"""Benchmark of the image builds: cold, unchanged, and after touching one service's code.

    uv run python scripts/bench_images.py --local-base      # on kit/python:3.11-slim
    uv run python scripts/bench_images.py --base-too        # also time the base images

Cold: the service images and the classic builder's intermediate layers are removed
first (base images and the host's wheel cache stay). Touch: one line is appended to
a module of one service (and removed afterwards); the script checks that only that
image is rebuilt and that its third-party layer (/venv) is reused. Prints seconds
and sizes. Removes nothing it did not build.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from progress import Progress

from harness.images.base_images import LOCAL_PYTHON_IMAGE, PUBLIC_PYTHON_IMAGE, build_base
from harness.images.engine import image_id
from harness.images.service_images import Outcome, build_services
from harness.workspace import Workspace
from images import ROOT


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=True)
    return result.stdout


def build_all(progress: Progress, python_image: str) -> tuple[float, list[Outcome]]:
    workspace = Workspace.read(ROOT)
    started = time.monotonic()
    names = [s.name for s in workspace.services()]
    outcomes = build_services(progress, workspace, names, python_image)
    return time.monotonic() - started, outcomes


def report(title: str, seconds: float, outcomes: list[Outcome]) -> None:
    print(f"{title}: {seconds:.1f} s")
    for o in outcomes:
        verb = "built " if o.built else "reused"
        print(f"  {verb} {o.tag:<26} {o.seconds:6.1f} s  {o.size_mb:6.1f} MB")


def venv_layer(tag: str) -> str:
    """The id of the layer that copies /venv (the third-party dependencies)."""
    for line in docker(
        "history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}", tag
    ).splitlines():
        layer, _, created_by = line.partition(" ")
        if "COPY" in created_by and "/venv" in created_by:
            return layer
    raise SystemExit(f"no /venv layer in {tag}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--local-base", action="store_true", help=f"use {LOCAL_PYTHON_IMAGE}")
    parser.add_argument("--base-too", action="store_true", help="also rebuild the base images")
    parser.add_argument("--touch", default="dummy", help="the service whose code is touched")
    args = parser.parse_args()
    python_image = LOCAL_PYTHON_IMAGE if args.local_base else PUBLIC_PYTHON_IMAGE
    with Progress() as progress:
        return bench(progress, args.touch, python_image, base_too=args.base_too)


def bench(progress: Progress, touch: str, python_image: str, *, base_too: bool) -> int:
    if base_too:
        started = time.monotonic()
        build_base(progress, force=True)
        progress.note(
            f"base images (debootstrap, python, postgres), cold: {time.monotonic() - started:.1f} s"
        )
    if image_id(python_image) is None:
        raise SystemExit(f"{python_image} is missing: `python scripts/images.py base` first")

    workspace = Workspace.read(ROOT)
    for service in workspace.services():
        for line in docker(
            "images", "--format", "{{.Repository}}:{{.Tag}}", f"kit/{service.name}"
        ).split():
            docker("rmi", "--force", line)
    seconds, cold = build_all(progress, python_image)
    report("cold build, every service image", seconds, cold)

    seconds, unchanged = build_all(progress, python_image)
    report("rebuild, nothing changed", seconds, unchanged)

    touched = ROOT / "services" / touch / "src" / touch / "__init__.py"
    before = {o.service: o.tag for o in unchanged}
    original = touched.read_text()
    try:
        touched.write_text(original + "# touched by scripts/bench_images.py\n")
        seconds, after = build_all(progress, python_image)
    finally:
        touched.write_text(original)
    report(f"rebuild after touching {touched.relative_to(ROOT)}", seconds, after)
    rebuilt = sorted(o.service for o in after if o.built)
    print(f"  rebuilt: {rebuilt} (expected: ['{touch}'])")
    new_tag = next(o.tag for o in after if o.service == touch)
    same_venv = venv_layer(before[touch]) == venv_layer(new_tag)
    print(f"  third-party layer (/venv) reused: {same_venv}")
    docker("rmi", new_tag)  # the touched variant is not a real version
    build_all(progress, python_image)  # retag :local to the real sources
    return 0 if rebuilt == [touch] and same_venv else 1


if __name__ == "__main__":
    sys.exit(main())
