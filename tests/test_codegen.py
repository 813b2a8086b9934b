"""scripts/codegen.py: generated code follows the protos, and --check catches drift."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODEGEN = ROOT / "scripts" / "codegen.py"


def codegen(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CODEGEN), "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of contracts/ with freshly generated code beside it."""
    root = tmp_path_factory.mktemp("workspace")
    shutil.copytree(ROOT / "contracts", root / "contracts")
    assert codegen(root).returncode == 0
    return root


def test_the_repositorys_generated_code_is_fresh() -> None:
    result = codegen(ROOT, "--check")
    assert result.returncode == 0, result.stdout


def test_fresh_output_passes_the_check(workspace: Path) -> None:
    result = codegen(workspace, "--check")
    assert result.returncode == 0, result.stdout
    assert (workspace / "services/dummy/src/dummy/v1/dummy_pb2_grpc.pyi").exists()
    # The kit's own options go to servicekit, which every service's image holds.
    assert (workspace / "packages/servicekit/src/kit/v1/options_pb2.py").exists()
    assert not (workspace / "services/kit").exists()


def test_a_proto_change_without_regenerating_fails_the_check(
    workspace: Path, tmp_path: Path
) -> None:
    root = tmp_path / "changed"
    shutil.copytree(workspace, root)
    proto = root / "contracts/user/v1/user.proto"
    proto.write_text(
        proto.read_text().replace(
            "  string avatar_url = 4;", "  string avatar_url = 4;\n  string nickname = 6;"
        )
    )
    result = codegen(root, "--check")
    assert result.returncode == 1
    assert "differs: services/user/src/user/v1/user_pb2.py" in result.stdout


def test_a_hand_edit_of_generated_code_fails_the_check(workspace: Path, tmp_path: Path) -> None:
    root = tmp_path / "edited"
    shutil.copytree(workspace, root)
    stub = root / "services/dummy/src/dummy/v1/dummy_pb2_grpc.py"
    stub.write_text(stub.read_text() + "\n# patched by hand\n")
    result = codegen(root, "--check")
    assert result.returncode == 1
    assert "differs: services/dummy/src/dummy/v1/dummy_pb2_grpc.py" in result.stdout


def test_missing_and_left_over_files_fail_the_check(workspace: Path, tmp_path: Path) -> None:
    root = tmp_path / "drifted"
    shutil.copytree(workspace, root)
    (root / "services/auth/src/auth/v1/auth_pb2.pyi").unlink()
    (root / "services/auth/src/auth/v1/old_pb2.py").write_text("")
    result = codegen(root, "--check")
    assert result.returncode == 1
    assert "missing: services/auth/src/auth/v1/auth_pb2.pyi" in result.stdout
    assert "left over: services/auth/src/auth/v1/old_pb2.py" in result.stdout
