"""scripts/dockergen.py and the content hash of scripts/images.py, on small workspaces."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from dockergen import dockerfile  # noqa: E402

from harness import Workspace  # noqa: E402
from images import content_hash  # noqa: E402


def dockergen(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/dockergen.py"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def member(root: Path, folder: str, name: str, deps: list[str], port: int | None = None) -> None:
    path = root / folder
    (path / "src" / name).mkdir(parents=True)
    (path / "src" / name / "__init__.py").write_text(f"NAME = {name!r}\n")
    service = f"\n[tool.kit.service]\ngrpc-port = {port}\n" if port else ""
    (path / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0"\ndependencies = {deps!r}\n{service}'
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """kit (a shared package) <- core <- alpha (service); beta (service) <- kit only."""
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent("""
            [project]
            name = "root"
            version = "0"
            [tool.uv.workspace]
            members = ["packages/*", "services/*"]
        """)
    )
    member(tmp_path, "packages/kit", "kit", ["grpcio>=1"])
    member(tmp_path, "packages/core", "core", ["kit", "httpx"])
    member(tmp_path, "services/alpha", "alpha", ["core", "asyncpg"], port=50061)
    member(tmp_path, "services/beta", "beta", ["kit"], port=50062)
    return tmp_path


def test_the_repositorys_dockerfiles_are_fresh() -> None:
    result = dockergen(ROOT, "--check")
    assert result.returncode == 0, result.stdout


def test_an_image_holds_the_service_and_its_workspace_dependencies_only(workspace: Path) -> None:
    graph = Workspace.read(workspace)
    alpha = dockerfile(graph, graph.members["alpha"])
    assert "COPY packages/kit/src/ /app/\nCOPY packages/core/src/ /app/\n" in alpha
    assert "COPY services/alpha/src/ /app/" in alpha
    assert "beta" not in alpha
    beta = dockerfile(graph, graph.members["beta"])
    assert "packages/core" not in beta
    assert 'CMD ["python", "-m", "beta"]' in beta
    assert "BETA_GRPC_PORT=50062" in beta
    assert 'servicekit.healthcheck", "127.0.0.1:50062"' in beta


def test_an_http_service_gets_an_http_health_check(workspace: Path) -> None:
    path = workspace / "services/front"
    (path / "src" / "front").mkdir(parents=True)
    (path / "pyproject.toml").write_text(
        '[project]\nname = "front"\nversion = "0"\ndependencies = ["kit"]\n'
        '[tool.kit.service]\nhttp-port = 8080\ncalls = { alpha = "FRONT_ALPHA_ADDRESS" }\n'
    )
    graph = Workspace.read(workspace)
    assert [m.name for m in graph.http_services()] == ["front"]
    assert "front" not in [m.name for m in graph.services()]  # the gRPC services only
    front = dockerfile(graph, graph.members["front"])
    assert "FRONT_HOST=0.0.0.0" in front
    assert "FRONT_PORT=8080" in front
    assert '"--http", "http://127.0.0.1:8080/healthz"' in front
    assert dockergen(workspace).returncode == 0
    assert (workspace / "services/front/Dockerfile").exists()


def test_written_files_pass_the_check_and_hand_edits_fail_it(workspace: Path) -> None:
    assert dockergen(workspace).returncode == 0
    assert dockergen(workspace, "--check").returncode == 0
    edited = workspace / "services/alpha/Dockerfile"
    edited.write_text(edited.read_text().replace("USER app", "USER root"))
    (workspace / "services/beta/Dockerfile").unlink()
    result = dockergen(workspace, "--check")
    assert result.returncode == 1
    assert "differs: services/alpha/Dockerfile" in result.stdout
    assert "missing: services/beta/Dockerfile" in result.stdout


def test_a_new_dependency_makes_the_dockerfile_stale(workspace: Path) -> None:
    assert dockergen(workspace).returncode == 0
    pyproject = workspace / "services/beta/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("['kit']", "['kit', 'core']"))
    result = dockergen(workspace, "--check")
    assert result.returncode == 1
    assert "differs: services/beta/Dockerfile" in result.stdout


def test_a_dependency_cycle_is_an_error(workspace: Path) -> None:
    pyproject = workspace / "packages/kit/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("['grpcio>=1']", "['alpha']"))
    result = dockergen(workspace, "--check")
    assert result.returncode != 0
    assert "workspace dependency cycle" in result.stderr


def hashes(workspace: Path, requirements: Path) -> dict[str, str]:
    graph = Workspace.read(workspace)
    return {
        name: content_hash(
            graph, graph.members[name], requirements, "sha256:base", graph.source_digest(name)
        )
        for name in ("alpha", "beta")
    }


@pytest.mark.parametrize(
    ("change", "changed"),
    [
        ("services/alpha/src/alpha/__init__.py", {"alpha"}),
        ("packages/core/src/core/__init__.py", {"alpha"}),
        ("packages/kit/src/kit/__init__.py", {"alpha", "beta"}),
        ("services/alpha/README.md", set()),
        ("services/alpha/src/alpha/__pycache__/x.cpython-311.pyc", set()),
    ],
    ids=["service code", "a package it uses", "a package both use", "outside src", "bytecode"],
)
def test_the_content_hash_follows_what_goes_into_the_image(
    workspace: Path, tmp_path: Path, change: str, changed: set[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("grpcio==1.0 --hash=sha256:00\n")
    before = hashes(workspace, requirements)
    sources_before = source_digests(workspace)
    assert hashes(workspace, requirements) == before  # stable
    path = workspace / change
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# touched\n")
    after = hashes(workspace, requirements)
    assert {name for name in before if before[name] != after[name]} == changed
    # the image's label, which the docker backend checks the checkout against, follows too
    sources_after = source_digests(workspace)
    assert {n for n in sources_before if sources_before[n] != sources_after[n]} == changed


def source_digests(workspace: Path) -> dict[str, str]:
    graph = Workspace.read(workspace)
    return {name: graph.source_digest(name) for name in ("alpha", "beta")}


def test_two_checkouts_of_the_same_code_have_the_same_source_digest(
    workspace: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "elsewhere"
    shutil.copytree(workspace, copy, ignore=shutil.ignore_patterns("elsewhere"))
    assert source_digests(copy) == source_digests(workspace)


def test_the_content_hash_follows_the_requirements_and_the_base(
    workspace: Path, tmp_path: Path
) -> None:
    graph = Workspace.read(workspace)
    alpha = graph.members["alpha"]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("grpcio==1.0\n")
    sources = graph.source_digest("alpha")
    first = content_hash(graph, alpha, requirements, "sha256:base", sources)
    assert content_hash(graph, alpha, requirements, "sha256:other-base", sources) != first
    requirements.write_text("grpcio==1.1\n")
    assert content_hash(graph, alpha, requirements, "sha256:base", sources) != first
