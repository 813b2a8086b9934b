"""kit-images on a project outside the kit's workspace: a plain project's services, its
Dockerfiles, and requirements pinned to the running environment (no Docker needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from harness import ImageError, Workspace, WorkspaceError, workspace_services
from harness.images.dockerfiles import dockerfile
from harness.images.pins import direct_source, environment_pins

PROJECT = """
[project]
name = "notes-project"
version = "0"
dependencies = ["pytest>=8"]

[tool.kit]
image-repository = "notes"

[tool.kit.services.notes]
grpc-port = 50071
module = "notes.server"
calls = { tags = "NOTES_TAGS_ADDRESS" }

[tool.kit.services.tags]
grpc-port = 50072
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PROJECT)
    for package in ("notes", "tags"):
        (tmp_path / "src" / package).mkdir(parents=True)
        (tmp_path / "src" / package / "__init__.py").write_text(f"NAME = {package!r}\n")
    return tmp_path


def kit_images(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.images", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_a_plain_project_names_its_services(project: Path) -> None:
    workspace = Workspace.read(project)
    assert workspace.plain
    assert workspace.image_repository == "notes"
    assert workspace.requirements == ("pytest>=8",)
    assert [s.name for s in workspace.services()] == ["tags", "notes"]  # callee first
    notes = workspace.members["notes"]
    assert notes.python_module == "notes.server"
    assert notes.dockerfile == Path("docker/notes.Dockerfile")
    assert set(workspace.source_files("notes")) == {
        "src/notes/__init__.py",
        "src/tags/__init__.py",
    }


def test_workspace_services_of_a_plain_project(project: Path) -> None:
    specs = {spec.name: spec for spec in workspace_services(project)}
    assert specs["notes"].image == "notes/notes:local"
    assert specs["notes"].python_module == "notes.server"
    assert specs["notes"].calls == {"tags": "NOTES_TAGS_ADDRESS"}
    assert specs["tags"].proto_module == "tags.v1.tags_pb2"
    assert specs["tags"].source_digest == Workspace.read(project).source_digest("tags")


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ("", "declares no services"),
        ("[tool.kit.services.x]\ngrpc-port = 1\nhttp-port = 2\n", "exactly one of grpc-port"),
        ("[tool.kit.services.x]\nmodule = 'x'\n", "exactly one of grpc-port"),
    ],
    ids=["none", "both ports", "no port"],
)
def test_a_plain_project_without_usable_services_is_refused(
    tmp_path: Path, services: str, message: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "p"\n{services}')
    with pytest.raises(WorkspaceError, match=message):
        Workspace.read(tmp_path)


def test_the_dockerfile_of_a_plain_project(project: Path) -> None:
    workspace = Workspace.read(project)
    text = dockerfile(workspace, workspace.members["notes"])
    assert "COPY src/ /app/\n" in text
    assert 'CMD ["python", "-m", "notes.server"]' in text
    assert "NOTES_GRPC_PORT=50071" in text
    assert "--require-hashes" not in text  # pinned from the environment: no hashes
    # every service of the project needs the same: one requirements file, one wheelhouse,
    # so the images share their dependency layers
    tags = dockerfile(workspace, workspace.members["tags"])
    for shared in ("COPY build/requirements/project.txt", "COPY build/wheelhouse/project/"):
        assert shared in text
        assert shared in tags
    (project / "uv.lock").write_text("version = 1\n")
    assert "--require-hashes" in dockerfile(Workspace.read(project), workspace.members["notes"])


def test_dockerfiles_are_written_then_checked(project: Path) -> None:
    assert kit_images(project, "dockerfiles", "--check").returncode == 1
    written = kit_images(project, "dockerfiles")
    assert written.returncode == 0, written.stderr
    assert "wrote docker/notes.Dockerfile" in written.stdout
    ignored = (project / ".dockerignore").read_text()
    assert "!src/**" in ignored
    assert "!build/wheelhouse/**" in ignored
    assert kit_images(project, "dockerfiles", "--check").returncode == 0
    (project / "docker" / "tags.Dockerfile").write_text("FROM scratch\n")
    stale = kit_images(project, "dockerfiles", "--check")
    assert stale.returncode == 1
    assert "differs: docker/tags.Dockerfile" in stale.stdout


def test_a_directory_that_is_no_project_is_an_error(tmp_path: Path) -> None:
    result = kit_images(tmp_path, "dockerfiles")
    assert result.returncode == 2
    assert "has no pyproject.toml" in result.stderr


def test_pins_follow_the_environment() -> None:
    pins = {pin.name: pin for pin in environment_pins(["pytest>=8", "absent; python_version<'3'"])}
    assert pins["pytest"].version == metadata.version("pytest")
    assert {"pluggy", "iniconfig", "packaging"} <= set(pins)  # what pytest needs
    assert "absent" not in pins  # its marker is false here
    assert pins["pluggy"].image_line() == f"pluggy=={metadata.version('pluggy')}"


def test_a_requirement_not_installed_is_an_error() -> None:
    with pytest.raises(ImageError, match=r"not-installed-anywhere .* is not installed"):
        environment_pins(["not-installed-anywhere>=1"])


def installed(tmp_path: Path, direct_url: dict[str, object]) -> metadata.Distribution:
    info = tmp_path / "probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: probe\nVersion: 1.0\n")
    (info / "direct_url.json").write_text(json.dumps(direct_url))
    return metadata.PathDistribution(info)


def test_a_dependency_from_a_local_wheel_is_fetched_from_there(tmp_path: Path) -> None:
    wheel = tmp_path / "probe-1.0-py3-none-any.whl"
    wheel.write_bytes(b"a wheel")
    url = wheel.as_uri()
    source, note = direct_source(installed(tmp_path, {"url": url, "archive_info": {}}))
    assert source == url
    assert note.startswith("probe-1.0-py3-none-any.whl sha256:")
    wheel.unlink()
    with pytest.raises(ImageError, match="which is gone"):
        direct_source(metadata.PathDistribution(tmp_path / "probe-1.0.dist-info"))


def test_a_dependency_from_git_is_fetched_at_its_commit(tmp_path: Path) -> None:
    direct: dict[str, object] = {
        "url": "https://example.org/kit.git",
        "vcs_info": {"vcs": "git", "commit_id": "abc123"},
        "subdirectory": "packages/servicekit",
    }
    source, note = direct_source(installed(tmp_path, direct))
    assert source == "git+https://example.org/kit.git@abc123#subdirectory=packages/servicekit"
    assert note == "commit abc123"


def test_kit_images_is_the_packages_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness.images", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for command in ("dockerfiles", "base", "build"):
        assert command in result.stdout
