"""A project's third-party requirements pinned for its images: exported from uv.lock, or,
for a project without one, the versions the running environment has installed (the
environment its tests run in, so the images run what the tests ran).

Each is two files under ``build/requirements/``: ``<service>.txt``, what the image
installs (``name==version``, with hashes from a lock), and ``<service>.host.txt``, what
the host fetches its wheels from (the same, but a distribution installed from a local
wheel, a folder or git is fetched from there: a servicekit built from the kit's checkout
is on no index).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import ImageError
from harness.images.engine import run, uv_executable
from harness.workspace import Member, Workspace

__all__ = ["Pin", "Requirements", "direct_source", "environment_pins", "service_requirements"]


@dataclass(frozen=True)
class Pin:
    """An installed distribution: its name, version, and where the host fetches it from
    when no index has it (a URL, "" for an index)."""

    name: str
    version: str
    source: str = ""
    note: str = ""  # what identifies the source's content (a wheel's sha256, a commit)

    def image_line(self) -> str:
        line = f"{self.name}=={self.version}"
        return f"{line}  # {self.note}" if self.note else line

    def host_line(self) -> str:
        if not self.source:
            return self.image_line()
        return f"{self.name} @ {self.source}" + (f"  # {self.note}" if self.note else "")


@dataclass(frozen=True)
class Requirements:
    image: Path  # what the image installs
    host: Path  # what the host fetches


def direct_source(dist: metadata.Distribution) -> tuple[str, str]:
    """(source, note) from the distribution's direct_url.json (PEP 610); ("", "") when it
    came from an index."""
    text = dist.read_text("direct_url.json")
    if not text:
        return "", ""
    direct = json.loads(text)
    url = str(direct.get("url", ""))
    subdirectory = direct.get("subdirectory")
    fragment = f"#subdirectory={subdirectory}" if subdirectory else ""
    if "vcs_info" in direct:
        vcs = direct["vcs_info"]
        commit = vcs.get("commit_id", "")
        return f"{vcs['vcs']}+{url}@{commit}{fragment}", f"commit {commit}"
    parsed = urlparse(url)
    if parsed.scheme == "file" and "archive_info" in direct:
        path = Path(unquote(parsed.path))
        if not path.exists():
            raise ImageError(
                f"{dist.metadata['Name']} was installed from {path}, which is gone: "
                "install it again (from its wheel, git or an index) or restore the file"
            )
        return url, f"{path.name} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    return url + fragment, ""


def environment_pins(requirements: tuple[str, ...] | list[str]) -> list[Pin]:
    """``requirements`` (PEP 508 strings) and everything they need, as installed in the
    running environment (markers evaluated for it), sorted by name."""
    found: dict[str, Pin] = {}
    pending = [(r, frozenset[str]()) for r in requirements]
    while pending:
        text, extras = pending.pop()
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            raise ImageError(f"requirement {text!r}: {error}") from None
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras}
        ):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ImageError(
                f"{requirement.name} ({text!r}) is not installed in this environment "
                "(the images take its versions): install the project's dependencies into it "
                "first, or give the project a uv.lock"
            ) from None
        requested = frozenset(requirement.extras)
        known = found.get(name)
        if known is not None and not requested:
            continue
        source, note = direct_source(dist)
        found[name] = Pin(name, dist.version, source, note)
        pending.extend((r, requested) for r in dist.requires or [])
    return sorted(found.values(), key=lambda pin: pin.name)


def _export(workspace: Workspace, target: Path, *selection: str) -> None:
    result = run(
        [
            uv_executable(workspace.root), "export", "--frozen", "--no-header", *selection,
            "--output-file", str(target),
        ],
        cwd=workspace.root,
    )  # fmt: skip
    if result.returncode != 0:
        raise ImageError(f"uv export of {target.stem} failed:\n{result.stderr}")


def service_requirements(workspace: Workspace, service: Member) -> Requirements:
    """The service's third-party requirements (workspace members are copied, not
    installed; a plain project's own code is its src/, copied too)."""
    folder = workspace.root / "build" / "requirements"
    folder.mkdir(parents=True, exist_ok=True)
    name = workspace.requirements_name(service.name)
    image = folder / f"{name}.txt"
    host = folder / f"{name}.host.txt"
    if workspace.locked:
        if workspace.plain:
            _export(workspace, image, "--no-dev", "--no-emit-project")
        else:
            _export(workspace, image, "--no-dev", "--no-emit-workspace", "--package", service.name)
        host.write_text(image.read_text())
        return Requirements(image, host)
    if not workspace.plain:
        raise ImageError(f"{workspace.root} is a uv workspace without uv.lock: run `uv lock`")
    pins = environment_pins(workspace.requirements)
    header = "# pinned to the environment that ran kit-images (the project has no uv.lock)\n"
    image.write_text(header + "".join(f"{pin.image_line()}\n" for pin in pins))
    host.write_text(header + "".join(f"{pin.host_line()}\n" for pin in pins))
    return Requirements(image, host)
