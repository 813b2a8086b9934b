"""scripts/protoguard.py: buf lint, buf breaking and the declared-codes check, each shown
failing on the change it exists for, in a temporary git repository holding this
repository's buf.yaml and protos (main, then a branch that changes them)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUARD = ROOT / "scripts" / "protoguard.py"
USER_PROTO = "contracts/user/v1/user.proto"
GET_USER_CODES = (
    "{ codes: [INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE] };\n  }\n\n  // Returns the user with"
)


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def guard(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GUARD), "--root", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def main_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose main holds buf.yaml and the protos (no committed baseline)."""
    repo = tmp_path_factory.mktemp("main") / "repo"
    (repo / "contracts").mkdir(parents=True)
    shutil.copyfile(ROOT / "buf.yaml", repo / "buf.yaml")
    for proto in (ROOT / "contracts").glob("*/v*/*.proto"):
        target = repo / proto.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(proto, target)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "contracts")
    return repo


@pytest.fixture
def branch(main_repo: Path, tmp_path: Path) -> Path:
    """A copy of ``main_repo`` on a branch ``change``, for a test to edit."""
    repo = tmp_path / "repo"
    shutil.copytree(main_repo, repo)
    git(repo, "checkout", "-q", "-b", "change")
    return repo


def edit(repo: Path, old: str, new: str, proto: str = USER_PROTO) -> None:
    path = repo / proto
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} should occur once in {proto}"
    path.write_text(text.replace(old, new))


def drop_rpc(name: str) -> Callable[[Path], None]:
    def change(repo: Path) -> None:
        path = repo / USER_PROTO
        text = path.read_text()
        block = re.search(rf"\n  // [^\n]*\n(  //[^\n]*\n)*  rpc {name}\(.*?\n  }}\n", text, re.S)
        assert block is not None
        path.write_text(text.replace(block.group(0), "\n"))

    return change


# (change, buf's or the guard's message): each must fail the check.
BREAKING: dict[str, tuple[Callable[[Path], None], str]] = {
    "field renumbered": (
        lambda repo: edit(repo, "  string avatar_url = 4;", "  string avatar_url = 6;"),
        'Previously present field "4" with name "avatar_url" on message "User" was deleted '
        'without reserving the number "4".',
    ),
    "field type changed": (
        lambda repo: edit(
            repo,
            "  string name = 2;\n  string avatar_url = 3;",
            "  bytes name = 2;\n  string avatar_url = 3;",
        ),
        'Field "2" with name "name" on message "CreateUserRequest" changed type from "string" '
        'to "bytes".',
    ),
    "RPC removed": (
        drop_rpc("GetUserByEmail"),
        'Previously present RPC "GetUserByEmail" on service "UserService" was deleted.',
    ),
    "field removed without reserving it": (
        lambda repo: edit(repo, "  string avatar_url = 3;\n", ""),
        'Previously present field "3" with name "avatar_url" on message "CreateUserRequest" '
        'was deleted without reserving the number "3".',
    ),
    "a declared code added": (
        lambda repo: edit(
            repo,
            GET_USER_CODES,
            GET_USER_CODES.replace("NOT_FOUND,", "NOT_FOUND, PERMISSION_DENIED,"),
        ),
        "RPC user.v1.UserService.GetUser declares PERMISSION_DENIED in "
        "(kit.v1.may_return), which it did not (it declared INVALID_ARGUMENT, NOT_FOUND, "
        "UNAVAILABLE): its consumers' error handling may not know it.",
    ),
    "the declared codes dropped": (
        lambda repo: edit(
            repo,
            "    option (kit.v1.may_return) = " + GET_USER_CODES,
            GET_USER_CODES.split("\n", 1)[1],
        ),
        "RPC user.v1.UserService.GetUser no longer has its (kit.v1.may_return) option; "
        "it declared INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE.",
    ),
}


@pytest.mark.parametrize(("change", "message"), BREAKING.values(), ids=BREAKING.keys())
def test_a_breaking_change_fails_with_its_message(
    branch: Path, change: Callable[[Path], None], message: str
) -> None:
    change(branch)
    result = guard(branch)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout
    assert "breaking changes against the protos at" in result.stdout
    assert "(the merge base with main)" in result.stdout


def test_an_unchanged_branch_passes(branch: Path) -> None:
    result = guard(branch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "protos: buf lint clean; no breaking change against the protos at" in result.stdout


COMPATIBLE: dict[str, Callable[[Path], None]] = {
    "field removed, number and name reserved": lambda repo: edit(
        repo, "  string avatar_url = 3;\n", '  reserved 3;\n  reserved "avatar_url";\n'
    ),
    "field added": lambda repo: edit(
        repo, "  string avatar_url = 4;\n", "  string avatar_url = 4;\n  string locale = 6;\n"
    ),
    "a declared code removed": lambda repo: edit(
        repo, GET_USER_CODES, GET_USER_CODES.replace("NOT_FOUND, ", "")
    ),
}


@pytest.mark.parametrize("change", COMPATIBLE.values(), ids=COMPATIBLE.keys())
def test_a_compatible_change_passes(branch: Path, change: Callable[[Path], None]) -> None:
    change(branch)
    result = guard(branch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no breaking change against the protos at" in result.stdout


def test_a_lint_finding_fails(branch: Path) -> None:
    edit(
        branch,
        "message GetUserRequest {",
        "message get_user_request {}\n\nmessage GetUserRequest {",
    )
    result = guard(branch)
    assert result.returncode == 1
    assert 'Message name "get_user_request" should be PascalCase, such as "GetUserRequest".' in (
        result.stdout
    )


def test_committed_changes_on_the_branch_are_compared_with_the_merge_base(branch: Path) -> None:
    drop_rpc("GetUser")(branch)
    git(branch, "commit", "-q", "-am", "drop GetUser")
    result = guard(branch)
    assert result.returncode == 1
    assert 'Previously present RPC "GetUser" on service "UserService" was deleted.' in result.stdout


def test_accepting_moves_the_baseline_the_branch_is_compared_with(
    main_repo: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(main_repo, repo)
    assert guard(repo, "--accept").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline")
    git(repo, "checkout", "-q", "-b", "change")
    added = GET_USER_CODES.replace("NOT_FOUND,", "NOT_FOUND, PERMISSION_DENIED,")
    edit(repo, GET_USER_CODES, added)
    assert guard(repo).returncode == 1
    accepted = guard(repo, "--accept")
    assert accepted.returncode == 0
    assert "PERMISSION_DENIED" in (repo / "contracts/baseline/user/v1/user.proto").read_text()
    result = guard(repo)
    assert result.returncode == 0, result.stdout
    assert "this branch changed contracts/baseline/" in result.stdout


def test_a_shallow_clone_is_compared_with_the_committed_baseline(
    main_repo: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(main_repo, repo)
    assert guard(repo, "--accept").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline")
    git(repo, "checkout", "-q", "-b", "change")
    edit(repo, "  string avatar_url = 4;", "  int64 avatar_url = 4;")
    git(repo, "commit", "-q", "-am", "retype avatar_url")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "change", repo.as_uri(), str(clone))
    result = guard(clone)
    assert result.returncode == 1
    assert "against contracts/baseline/ (a shallow clone" in result.stdout
    assert 'changed type from "string" to "int64"' in result.stdout


def test_without_history_or_baseline_the_error_says_what_to_do(tmp_path: Path) -> None:
    shutil.copyfile(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "contracts/user", tmp_path / "contracts/user")
    shutil.copytree(ROOT / "contracts/kit", tmp_path / "contracts/kit")
    result = guard(tmp_path)
    assert result.returncode == 2
    assert "no baseline: not a git repository, and contracts/baseline/ holds no protos" in (
        result.stderr
    )
    assert "python scripts/protoguard.py --accept" in result.stderr
