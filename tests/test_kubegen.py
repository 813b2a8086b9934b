"""scripts/kubegen.py on a small workspace of its own: what the graph gives, --check on
hand edits, bad facts refused with a clear error.

The workspace: alpha (a gRPC service, shutdown grace 25 s) and front (an HTTP service
that calls alpha). Their settings modules are importable from the test's sys.path, as
the real services' are from the workspace's environment.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import kubegen  # noqa: E402

from harness import Workspace  # noqa: E402

SETTINGS = """\
from pydantic_settings import BaseSettings, SettingsConfigDict


class {cls}(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="{prefix}")

    shutdown_grace_seconds: float = {grace}
"""


def service(root: Path, name: str, facts: str, *, grace: str = "25.0") -> None:
    path = root / "services" / name
    (path / "src" / name).mkdir(parents=True)
    (path / "src" / name / "__init__.py").write_text("")
    settings = SETTINGS.format(
        cls=f"{name.title()}Settings", prefix=f"{name.upper()}_", grace=grace
    )
    (path / "src" / name / "settings.py").write_text(settings)
    (path / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0"\ndependencies = []\n'
        f"[tool.kit.service]\n{facts}\n"
    )


@pytest.fixture(autouse=True)
def forget_the_workspace_modules() -> Iterator[None]:
    """Each test's alpha and front are its own: none imported by an earlier test is kept."""

    def forget() -> None:
        for module in [m for m in sys.modules if m.split(".")[0] in {"alpha", "front"}]:
            del sys.modules[module]

    forget()
    yield
    forget()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent("""
            [project]
            name = "root"
            version = "0"
            [tool.uv.workspace]
            members = ["services/*"]
        """)
    )
    service(tmp_path, "alpha", "grpc-port = 50061")
    service(tmp_path, "front", 'http-port = 8080\ncalls = { alpha = "FRONT_ALPHA_ADDRESS" }')
    for name in ("alpha", "front"):
        monkeypatch.syspath_prepend(str(tmp_path / "services" / name / "src"))
    return tmp_path


def documents(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(path.read_text())}


def test_the_graph_gives_the_policies_and_the_grace(workspace: Path) -> None:
    assert kubegen.main(["--root", str(workspace)]) == 0
    base = workspace / kubegen.TREE / "base"
    alpha = documents(base / "alpha.yaml")
    policy = alpha[("NetworkPolicy", "alpha")]["spec"]
    assert policy["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {kubegen.NAME_LABEL: "front"}}}],
            "ports": [{"protocol": "TCP", "port": 50061}],
        }
    ]
    pod = alpha[("Deployment", "alpha")]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 5 + 25 + 5
    front = documents(base / "front.yaml")[("NetworkPolicy", "front")]["spec"]
    assert [peer["namespaceSelector"] for rule in front["ingress"] for peer in rule["from"]] == [
        {"matchLabels": {"kubernetes.io/metadata.name": kubegen.INGRESS_NAMESPACE}}
    ]
    callee_rules = [rule for rule in front["egress"] if rule.get("to", [{}])[0].get("podSelector")]
    assert callee_rules == [
        {
            "to": [{"podSelector": {"matchLabels": {kubegen.NAME_LABEL: "alpha"}}}],
            "ports": [{"protocol": "TCP", "port": 50061}],
        }
    ]
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    (front_config,) = (
        c for c in kustomization["configMapGenerator"] if c["name"] == "front-config"
    )
    assert "FRONT_ALPHA_ADDRESS=alpha:50061" in front_config["literals"]


def test_hand_edits_missing_and_stray_files_fail_the_check(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kubegen.main(["--root", str(workspace)]) == 0
    base = workspace / kubegen.TREE / "base"
    edited = base / "alpha.yaml"
    edited.write_text(
        edited.read_text().replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
    )
    (base / "front.yaml").unlink()
    (base / "debug-pod.yaml").write_text("kind: Pod\n")
    capsys.readouterr()
    assert kubegen.main(["--root", str(workspace), "--check"]) == 1
    out = capsys.readouterr().out
    assert "differs: deploy/kubernetes/base/alpha.yaml" in out
    assert "missing: deploy/kubernetes/base/front.yaml" in out
    assert "not generated: deploy/kubernetes/base/debug-pod.yaml" in out
    assert kubegen.main(["--root", str(workspace)]) == 0
    assert not (base / "debug-pod.yaml").exists()


@pytest.mark.parametrize(
    ("facts", "grace", "problem"),
    [
        (
            'grpc-port = 50061\noutside-https = "yes"',
            "25.0",
            "alpha: [tool.kit.service] outside-https must be true/false",
        ),
        (
            'grpc-port = 50061\noptional-secrets = ["ALPHA_TOKEN"]',
            "25.0",
            "alpha: [tool.kit.service] optional-secrets must map a Secret's name",
        ),
        (
            "grpc-port = 50061",
            '"soon"',
            "alpha.settings has no settings class with env_prefix 'ALPHA_'",
        ),
    ],
    ids=["outside-https-not-a-boolean", "optional-secrets-not-a-table", "grace-not-a-number"],
)
def test_bad_facts_are_refused_with_what_to_write(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    facts: str,
    grace: str,
    problem: str,
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "root"\nversion = "0"\n[tool.uv.workspace]\nmembers = ["services/*"]\n'
    )
    service(tmp_path, "alpha", facts, grace=grace)
    monkeypatch.syspath_prepend(str(tmp_path / "services" / "alpha" / "src"))
    assert kubegen.main(["--root", str(tmp_path)]) == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / kubegen.TREE).exists()
    Workspace.read(tmp_path)  # the workspace itself is fine: the error is kubegen's
