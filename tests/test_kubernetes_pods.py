"""The generated pods run: each service's real image under the restrictions its
Deployment sets (read-only root filesystem, the emptyDir on /tmp, the numeric user,
every capability dropped, no privilege escalation, the memory and CPU limits), with the
environment of its ConfigMap, serves and answers its probe's health check, then stops
cleanly on SIGTERM within the pod's termination grace period.

No cluster runs here: Docker stands in for the kubelet, with the equivalent options
derived from the rendered local overlay (an option the translation does not know fails
the test rather than being skipped). The containers share the host's network so that
they reach the session's Postgres on 127.0.0.1; each listens on a port it picks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from servicekit.healthcheck import check

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import kubegen  # noqa: E402

if TYPE_CHECKING:
    pass

pytestmark = [pytest.mark.docker, pytest.mark.integration]

SERVE_TIMEOUT = 60.0
# Where the services listen here (the host's network, shared): their own interface and a
# port each picks, instead of the pod's 0.0.0.0 and fixed port.
LISTEN = {"GRPC_HOST": "127.0.0.1", "GRPC_PORT": "0", "HOST": "127.0.0.1", "PORT": "0"}


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def quantity(value: str) -> str:
    """A Kubernetes memory quantity (``384Mi``) as Docker writes it (``384m``)."""
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    assert value[-2:] in units, f"a quantity the test does not translate: {value}"
    return value[:-2] + units[value[-2:]]


def run_options(deployment: Mapping[str, Any]) -> list[str]:
    """`docker run` options that impose what the pod spec imposes."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert set(context) == {"allowPrivilegeEscalation", "readOnlyRootFilesystem", "capabilities"}
    assert context["capabilities"] == {"drop": ["ALL"]}
    options = ["--cap-drop", "ALL"]
    if context["readOnlyRootFilesystem"]:
        options.append("--read-only")
    if not context["allowPrivilegeEscalation"]:
        options += ["--security-opt", "no-new-privileges"]
    user = pod["securityContext"]
    options += ["--user", f"{user['runAsUser']}:{user['runAsGroup']}"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        assert set(volume) == {"name", "emptyDir"}, (
            f"a volume the test does not translate: {volume}"
        )
        size = quantity(volume["emptyDir"]["sizeLimit"])
        options += ["--tmpfs", f"{mount['mountPath']}:size={size},uid={user['runAsUser']}"]
    limits = container["resources"]["limits"]
    options += ["--memory", quantity(limits["memory"]), "--cpus", str(limits["cpu"])]
    return options


def environment(name: str, config: Mapping[str, str], database_url: str | None) -> list[str]:
    prefix = f"{name.upper()}_"
    env = dict(config)
    for setting, value in LISTEN.items():
        if prefix + setting in env:
            env[prefix + setting] = value
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT")  # no collector here; spans are not exported
    if database_url is not None:
        env[f"{prefix}DATABASE_URL"] = database_url
    return [f"--env={key}={value}" for key, value in sorted(env.items())]


def serving_port(container: str) -> int:
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        logs = docker("logs", container)
        for line in (logs.stdout + logs.stderr).splitlines():
            if '"serving"' in line:
                return int(json.loads(line)["port"])
        state = docker("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        assert state == "true", f"{container} exited:\n{logs.stdout}{logs.stderr}"
        time.sleep(0.2)
    raise AssertionError(f"{container} did not serve within {SERVE_TIMEOUT}s")


def local_pods() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("services/*/pyproject.toml"))


@pytest.mark.parametrize("name", local_pods())
def test_the_pod_runs_under_its_restrictions(name: str, fresh_database: str) -> None:
    if kubegen.kustomize_command() is None:
        pytest.skip("neither kustomize nor kubectl on PATH")
    resources = kubegen.render(ROOT / kubegen.TREE / "overlays" / "local")
    (deployment,) = (
        r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == name
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    image = container["image"]
    if docker("image", "inspect", image).returncode != 0:
        pytest.skip(f"{image} is not built: `make images`")
    (config_ref,) = container["envFrom"]
    (config,) = (
        r
        for r in resources
        if r["kind"] == "ConfigMap" and r["metadata"]["name"] == config_ref["configMapRef"]["name"]
    )
    is_grpc = "grpc" in container["readinessProbe"]
    started = docker(
        "run", "--detach", "--network", "host", *run_options(deployment),
        *environment(name, config["data"], fresh_database if is_grpc else None), image,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    identifier = started.stdout.strip()
    try:
        port = serving_port(identifier)
        if is_grpc:
            assert check(f"127.0.0.1:{port}", "", 5.0) is None
        else:
            path = container["readinessProbe"]["httpGet"]["path"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                assert answer.status == 200
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        began = time.monotonic()
        stopped = docker("stop", "--time", str(grace), identifier, timeout=grace + 30)
        assert stopped.returncode == 0, stopped.stderr
        assert time.monotonic() - began < grace, "stopped by SIGKILL at the end of the grace"
        state = json.loads(docker("inspect", "--format", "{{json .State}}", identifier).stdout)
        assert state["ExitCode"] == 0, docker("logs", identifier).stderr[-2000:]
    finally:
        docker("rm", "--force", identifier)
