"""harness and servicekit as distributions of their own: ranges of their own that the
workspace's lock satisfies, the generated `kit` and the base images' files inside the
wheels, the `kit-images` command and the pytest plugin declared."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = {"harness": ROOT / "harness", "servicekit": ROOT / "packages" / "servicekit"}


def project(name: str) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads(
        (DISTRIBUTIONS[name] / "pyproject.toml").read_text()
    )["project"]
    return project


def locked_versions() -> dict[str, Version]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {canonicalize_name(p["name"]): Version(p["version"]) for p in lock["package"]}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_each_dependency_has_a_range_the_lock_satisfies(name: str) -> None:
    locked = locked_versions()
    dependencies = project(name)["dependencies"]
    assert isinstance(dependencies, list)
    for text in dependencies:
        requirement = Requirement(text)
        assert requirement.specifier, f"{name}: {text!r} has no version range"
        version = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}: uv.lock has {requirement.name} {version}, outside {text!r}"
        )


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_each_has_a_version_and_its_changelog_names_it(name: str) -> None:
    version = str(project(name)["version"])
    changelog = (DISTRIBUTIONS[name] / "CHANGELOG.md").read_text()
    assert f"## {version}\n" in changelog


def test_servicekit_requires_what_its_generated_kit_needs() -> None:
    """The generated kit/v1 refuses an older grpcio or protobuf at import: the ranges say so."""
    generated = ROOT / "packages/servicekit/src/kit/v1"
    grpc = re.search(
        r"GRPC_GENERATED_VERSION = '([^']+)'", (generated / "options_pb2_grpc.py").read_text()
    )
    protobuf = re.search(
        r"Protobuf Python Version: (\S+)", (generated / "options_pb2.py").read_text()
    )
    assert grpc, "run scripts/codegen.py"
    assert protobuf, "run scripts/codegen.py"
    dependencies = project("servicekit")["dependencies"]
    assert isinstance(dependencies, list)
    ranges = {Requirement(r).name: Requirement(r).specifier for r in dependencies}
    for package, needed in (("grpcio", grpc[1]), ("protobuf", protobuf[1])):
        below = Version(needed).release
        older = Version(".".join(map(str, (*below[:-1], below[-1] - 1)))) if below[-1] else None
        assert ranges[package].contains(needed), f"{package} {needed} outside {ranges[package]}"
        if older is not None:
            assert not ranges[package].contains(older), (
                f"servicekit admits {package} {older}, older than its generated kit needs {needed}"
            )


def uv() -> str:
    tools = ROOT / ".tools" / "bin" / "uv"
    found = os.environ.get("UV") or shutil.which("uv") or (str(tools) if tools.exists() else "")
    if not found:
        pytest.skip("uv not found (make setup installs it)")
    return found


def test_the_wheels_carry_what_an_outside_project_needs(tmp_path: Path) -> None:
    for package in ("harness", "servicekit"):
        built = subprocess.run(
            [uv(), "build", "--wheel", "--package", package, "-o", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
    (servicekit,) = tmp_path.glob("servicekit-*.whl")
    with zipfile.ZipFile(servicekit) as wheel:
        names = set(wheel.namelist())
    assert {"kit/v1/options_pb2.py", "kit/v1/options.proto", "servicekit/runner.py"} <= names
    (harness,) = tmp_path.glob("harness-*.whl")
    with zipfile.ZipFile(harness) as wheel:
        names = set(wheel.namelist())
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = wheel.read(info).decode()
    assert {
        "harness/images/base/debian/build.sh",
        "harness/images/base/python/Dockerfile",
        "harness/images/base/postgres/Dockerfile",
        "harness/images/base/postgres/docker-entrypoint.sh",
        "harness/plugin.py",
    } <= names
    assert "kit-images = harness.images.cli:main" in entry_points
    assert "harness = harness.plugin" in entry_points
