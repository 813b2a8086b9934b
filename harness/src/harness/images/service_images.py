"""Service images tagged by content: built when what goes into one changed, else reused.

Each image is tagged ``<repository>/<service>:<content hash>`` and
``<repository>/<service>:local``. The hash covers the Dockerfile, the requirements, the
base image's id and the sources (the service's and those of the members it depends on;
a plain project's src/), so an unchanged service is never rebuilt. The image's labels
record each input: ``kit.source-digest`` (what the docker backend checks against the
checkout) and ``kit.build-inputs``, from which the next build says why it builds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ImageError
from harness.images.base_images import LOCAL_PYTHON_IMAGE
from harness.images.dockerfiles import dockerfile
from harness.images.engine import (
    docker_build,
    image_id,
    image_labels,
    image_size_mb,
    run,
    side_by_side,
    uv_executable,
)
from harness.images.pins import Requirements, service_requirements
from harness.images.progress import Progress, run_streamed
from harness.workspace import SOURCE_DIGEST_LABEL, Member, Workspace

__all__ = [
    "INPUTS_LABEL",
    "Outcome",
    "Plan",
    "build_planned",
    "build_services",
    "changed_files",
    "content_hash",
    "plan_services",
    "why_build",
]

# What else a service image records of its inputs, beside SOURCE_DIGEST_LABEL: JSON
# {"sources": {path: sha256} (Workspace.source_files), "requirements", "base",
# "dockerfile": digests}; the next build compares them with the checkout's to say why it
# builds. One label: the classic builder makes each label a step of the build.
INPUTS_LABEL = "kit.build-inputs"
NAMES_SHOWN = 3  # changed files named in a reason; the rest are counted


def fill_wheelhouse(
    progress: Progress,
    root: Path,
    name: str,
    requirements: Requirements,
    find_links: list[str],
) -> Path:
    """Wheels for every requirement, fetched (or built) on the host: the image build
    then installs with --no-index and needs no network at all."""
    wheelhouse = root / "build" / "wheelhouse" / name
    stamp = wheelhouse / ".requirements.sha256"
    digest = hashlib.sha256(requirements.host.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return wheelhouse
    shutil.rmtree(wheelhouse, ignore_errors=True)
    wheelhouse.mkdir(parents=True)
    hashes = ["--require-hashes"] if "--hash=" in requirements.host.read_text() else []
    links = [option for link in find_links for option in ("--find-links", link)]
    # pip from PyPI through `uv tool run` (uvx): the same pip everywhere, whatever the machine has.
    with progress.step(f"{name}: wheels of its dependencies") as step:
        finished = run_streamed(
            step,
            [
                uv_executable(root), "tool", "run", "pip", "wheel", "--progress-bar", "off",
                "--no-deps", *hashes, *links,
                "--wheel-dir", str(wheelhouse), "-r", str(requirements.host),
            ],
            cwd=root,
        )  # fmt: skip
    if finished.returncode != 0:
        raise ImageError(
            f"filling the wheelhouse of {name} failed; the last lines:\n{finished.tail}\n"
            "Remedy: the host needs PyPI (or PIP_FIND_LINKS / PIP_INDEX_URL / --find-links "
            "pointing at a mirror or a folder of wheels, the air-gapped mode)."
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
        ("requirements", "dependencies changed"),
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
    requirements: Requirements
    labels: dict[str, str] = field(repr=False)
    reasons: tuple[str, ...]


def plan_service(workspace: Workspace, service: Member, python_image: str, repository: str) -> Plan:
    base_id = image_id(python_image)
    if base_id is None:
        raise ImageError(
            f"the base image {python_image} is not on this machine and kit-images does not "
            f"pull. Remedy: `docker pull {python_image}` where a registry is reachable; "
            f"without one, `kit-images base` and build with --local-base "
            f"(PYTHON_IMAGE={LOCAL_PYTHON_IMAGE}), or --auto-base for either."
        )
    requirements = service_requirements(workspace, service)
    labels = input_labels(workspace, service, requirements.image, base_id)
    sources = labels[SOURCE_DIGEST_LABEL]
    digest = content_hash(workspace, service, requirements.image, base_id, sources)
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
    progress: Progress,
    workspace: Workspace,
    plan: Plan,
    python_image: str,
    earlier_seconds: float = 0.0,
) -> Outcome:
    """The image of ``plan`` built (its wheelhouse filled already) or reused, and tagged;
    ``earlier_seconds`` (its wheelhouse's) count in the outcome's time."""
    started = time.monotonic() - earlier_seconds
    if plan.reasons:
        with progress.step(f"{plan.tag}: docker build") as step:
            docker_build(
                step,
                workspace.root,
                workspace.root / plan.service.dockerfile,
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


def plan_services(
    workspace: Workspace, names: list[str], python_image: str, repository: str
) -> list[Plan]:
    return [
        plan_service(workspace, workspace.members[name], python_image, repository) for name in names
    ]


def build_planned(
    progress: Progress,
    workspace: Workspace,
    plans: list[Plan],
    python_image: str,
    find_links: list[str] | None = None,
) -> list[Outcome]:
    """Every planned image built or reused: the wheelhouses filled one after another
    (services can share one), then up to :func:`concurrent_builds` docker builds at once
    (two at once took 27 s where one after the other took 46 s on 2 cores: a build
    waits on its layers' disk writes much of the time). Outcomes in the plans' order; the
    first failure is raised once every build has ended."""
    announce(progress, plans)
    links = find_links or []
    wheel_seconds = [_fill_wheelhouse_of(progress, workspace, plan, links) for plan in plans]
    return side_by_side(
        [
            functools.partial(build_service, progress, workspace, plan, python_image, seconds)
            for plan, seconds in zip(plans, wheel_seconds, strict=True)
        ],
        concurrent_builds(),
    )


def _fill_wheelhouse_of(
    progress: Progress, workspace: Workspace, plan: Plan, find_links: list[str]
) -> float:
    """The wheelhouse of ``plan``'s image filled when it is to be built: the seconds it took."""
    if not plan.reasons:
        return 0.0
    started = time.monotonic()
    name = workspace.requirements_name(plan.service.name)
    fill_wheelhouse(progress, workspace.root, name, plan.requirements, find_links)
    return time.monotonic() - started


def concurrent_builds() -> int:
    """Docker builds run at once: one per core, at least two (four at once on 2 cores
    took as long as two and two)."""
    return max(2, os.cpu_count() or 1)


def build_services(
    progress: Progress, workspace: Workspace, names: list[str], python_image: str
) -> list[Outcome]:
    """Every image of ``names`` current: built when it changed, else reused."""
    with progress.step("service images: checking what changed"):
        plans = plan_services(workspace, names, python_image, workspace.image_repository)
    return build_planned(progress, workspace, plans, python_image)
