"""kit-images (``python -m harness.images``): the Dockerfiles, the content-tagged images and
the local base images of a project, from the directory it runs in (or ``--root``).

    kit-images dockerfiles [--check]   # write (check) each service's Dockerfile, .dockerignore
    kit-images base [--force]          # kit/debian, kit/python:3.11-slim, kit/postgres:15
    kit-images build [SERVICE ...]     # every service image that changed (or those named)
    kit-images build --auto-base       # public python:3.11-slim if present, else the local base

`build` writes the Dockerfiles when they are stale, pins each service's third-party
requirements (uv.lock, or the running environment's versions), fills a wheelhouse on the
host (the image build needs no network), and tags ``<repository>/<service>:<content
hash>`` and ``...:local``. It says what it will build and why, shows the step in progress
(a status line on a terminal, plain lines elsewhere, JSON lines with ``--progress
events``), one line per image built or reused, and the tail of a step that fails. One
build at a time per machine: every command holds a lock (``--lock-file``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.errors import ImageError, WorkspaceError
from harness.images.base_images import (
    LOCAL_PYTHON_IMAGE,
    PUBLIC_PYTHON_IMAGE,
    auto_base,
    build_base,
)
from harness.images.dockerfiles import expected_files, stale_files
from harness.images.engine import DEFAULT_LOCK_FILE, build_lock
from harness.images.progress import Mode, Progress
from harness.images.service_images import Outcome, build_planned, plan_services
from harness.workspace import Workspace

__all__ = ["Extra", "dockerfiles_command", "main", "write_dockerfiles"]

# A command a wrapper adds (the kit's scripts/images.py: traefik): name -> (help, run)
Extra = tuple[str, Callable[[Progress], None]]


def write_dockerfiles(workspace: Workspace) -> list[str]:
    """Write the generated files that are stale; the paths written (relative)."""
    written = []
    for path, content in expected_files(workspace).items():
        if not path.exists() or path.read_text() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            written.append(str(path.relative_to(workspace.root)))
    return written


def dockerfiles_command(root: Path, *, check: bool) -> int:
    try:
        workspace = Workspace.read(root.resolve())
        if not check:
            for path in write_dockerfiles(workspace):
                print(f"wrote {path}")
            return 0
        stale = stale_files(workspace)
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if stale:
        print("Dockerfiles are stale; run `kit-images dockerfiles`:", *stale, sep="\n  ")
        return 1
    count = len(expected_files(workspace)) - 1
    print(f"Dockerfiles are up to date ({count} images, .dockerignore)")
    return 0


DESCRIPTION = "The Dockerfiles, content-tagged images and local base images of a project."


def parser(default_root: Path, extras: Mapping[str, Extra], prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument(
        "--progress",
        choices=["auto", *(m.value for m in Mode)],
        default="auto",
        help="live status line (a terminal), plain lines (elsewhere), or JSON lines "
        "(events); auto: live on a terminal, else plain",
    )
    parser.add_argument(
        "--lock-file",
        type=Path,
        default=DEFAULT_LOCK_FILE,
        help=f"held while building; one build at a time (default {DEFAULT_LOCK_FILE})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    files = commands.add_parser("dockerfiles", help="write each service's Dockerfile")
    files.add_argument("--check", action="store_true", help="fail when one is stale")
    files.add_argument("--root", type=Path, default=default_root, help="the project")
    base = commands.add_parser("base", help="build the local Debian, Python and Postgres images")
    base.add_argument("--force", action="store_true", help="debootstrap again")
    for name, (help_text, _) in extras.items():
        commands.add_parser(name, help=help_text)
    build = commands.add_parser("build", help="build the service images that changed")
    build.add_argument("services", nargs="*", help="default: every service")
    build.add_argument(
        "--python-image",
        default=os.environ.get("PYTHON_IMAGE", PUBLIC_PYTHON_IMAGE),
        help=f"base image (env PYTHON_IMAGE; default {PUBLIC_PYTHON_IMAGE})",
    )
    build.add_argument(
        "--local-base",
        action="store_true",
        help=f"shorthand for --python-image {LOCAL_PYTHON_IMAGE}",
    )
    build.add_argument(
        "--auto-base",
        action="store_true",
        help=f"{PUBLIC_PYTHON_IMAGE} when it is on this machine, else {LOCAL_PYTHON_IMAGE} "
        "(the local base images built first when missing)",
    )
    build.add_argument("--json", action="store_true", help="print the outcome as JSON")
    build.add_argument(
        "--root", type=Path, default=default_root, help=f"the project (default {default_root})"
    )
    build.add_argument(
        "--repository",
        default=None,
        help="images are named <repository>/<service> (default: [tool.kit] image-repository, "
        "else kit)",
    )
    build.add_argument(
        "--find-links",
        action="append",
        default=[],
        metavar="DIR_OR_URL",
        help="where pip also looks for wheels (e.g. the folder of a servicekit wheel)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    default_root: Path | None = None,
    extras: Mapping[str, Extra] | None = None,
    prog: str = "kit-images",
) -> int:
    extras = extras or {}
    args = parser(default_root or Path.cwd(), extras, prog).parse_args(argv)
    if args.command == "dockerfiles":
        return dockerfiles_command(args.root, check=args.check)
    as_json = args.command == "build" and args.json
    # with --json, stdout is the JSON document alone
    stream = sys.stderr if as_json else sys.stdout
    mode = None if args.progress == "auto" else Mode(args.progress)
    with Progress(stream, mode=mode) as progress:
        try:
            with build_lock(args.lock_file, progress):
                outcomes = run_command(progress, args, extras)
        except (ImageError, WorkspaceError) as error:
            if progress.mode is Mode.EVENTS:
                progress.failure(f"error: {error}")
            else:
                progress.close()
                print(f"error: {error}", file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps([outcome.__dict__ for outcome in outcomes], indent=2))
    return 0


def run_command(
    progress: Progress, args: argparse.Namespace, extras: Mapping[str, Extra]
) -> list[Outcome]:
    if args.command == "base":
        build_base(progress, force=args.force)
        return []
    if args.command in extras:
        extras[args.command][1](progress)
        return []
    workspace = Workspace.read(args.root.resolve())
    services = {s.name: s for s in [*workspace.services(), *workspace.http_services()]}
    unknown = sorted(set(args.services) - set(services))
    if unknown:
        raise ImageError(f"unknown services {unknown}; known: {sorted(services)}")
    for path in write_dockerfiles(workspace):
        progress.note(f"wrote {path} (it was stale)")
    python_image = LOCAL_PYTHON_IMAGE if args.local_base else args.python_image
    names = args.services or sorted(services)
    repository = args.repository or workspace.image_repository
    with progress.step("service images: checking what changed"):
        if args.auto_base:
            python_image = auto_base(progress)
        plans = plan_services(workspace, names, python_image, repository)
    return build_planned(progress, workspace, plans, python_image, args.find_links)
