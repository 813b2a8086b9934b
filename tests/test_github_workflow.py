"""The GitHub Actions workflow (.github/workflows/ci.yml), checked without GitHub.

GitHub cannot run here, so the workflow is made correct by construction and this module
checks its structure: the jobs, a timeout on each, the contracts matrix against
contracts/*/v1/*.proto, every script and make target that a `run:` names, and the
integration tests on both harness backends. No network, no Docker.

The file is read with PyYAML's BaseLoader: every scalar stays a string (so `on:` is the
key "on", not YAML 1.1's boolean true).
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from pathlib import Path
from typing import TypeAlias

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

Node: TypeAlias = str | list["Node"] | dict[str, "Node"]


# ---------------------------------------------------------------- the workflow

REQUIRED_JOBS = {"lint", "unit", "contracts", "images", "integration", "integration-process"}
# Folders of this repository a `run:` may name; each named path must exist.
TRACKED = (
    "scripts/",
    "images/",
    "contracts/",
    "tests/",
    "services/",
    "packages/",
    "harness/",
    "examples/",
)
MATRIX_EXPRESSION = re.compile(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def mapping(node: Node, where: str) -> dict[str, Node]:
    assert isinstance(node, dict), f"{where}: expected a mapping, got {node!r}"
    return node


def sequence(node: Node, where: str) -> list[Node]:
    assert isinstance(node, list), f"{where}: expected a sequence, got {node!r}"
    return node


def text(node: Node, where: str) -> str:
    assert isinstance(node, str), f"{where}: expected a scalar, got {node!r}"
    return node


@pytest.fixture(scope="module")
def workflow() -> dict[str, Node]:
    document: Node = yaml.load(WORKFLOW.read_text(), Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds plain strings, lists and dicts
    return mapping(document, WORKFLOW.name)


@pytest.fixture(scope="module")
def jobs(workflow: dict[str, Node]) -> dict[str, dict[str, Node]]:
    return {
        name: mapping(job, f"jobs.{name}")
        for name, job in mapping(workflow["jobs"], "jobs").items()
    }


def steps(jobs: dict[str, dict[str, Node]], name: str) -> list[dict[str, Node]]:
    return [
        mapping(step, f"jobs.{name}.steps[{index}]")
        for index, step in enumerate(sequence(jobs[name]["steps"], f"jobs.{name}.steps"))
    ]


def matrix(job: dict[str, Node], name: str) -> dict[str, list[str]]:
    if "strategy" not in job:
        return {}
    values = mapping(mapping(job["strategy"], f"{name}.strategy")["matrix"], f"{name}.matrix")
    return {
        key: [text(value, f"{name}.matrix.{key}") for value in sequence(values[key], key)]
        for key in values
    }


def commands(jobs: dict[str, dict[str, Node]], name: str) -> list[str]:
    """The job's `run:` scripts, one per matrix combination, `${{ matrix.x }}` filled in
    and every other expression replaced by EXPR."""
    axes = matrix(jobs[name], name)
    combinations = [
        dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())
    ]
    result = []
    for step in steps(jobs, name):
        if "run" not in step:
            continue
        script = text(step["run"], f"{name}.run")
        for combination in combinations:
            filled = script
            for key, value in combination.items():
                filled = re.sub(r"\$\{\{\s*matrix\." + re.escape(key) + r"\s*\}\}", value, filled)
            unknown = MATRIX_EXPRESSION.search(filled)
            assert unknown is None, f"job {name}: {unknown.group(0) if unknown else ''} unset"
            result.append(EXPRESSION.sub("EXPR", filled))
    return result


def pytest_invocations(script: str) -> list[list[str]]:
    """The arguments of each `pytest` run in ``script``, after `pytest`."""
    invocations = []
    for line in script.splitlines():
        if line.strip().startswith("#") or "pytest" not in line.split():
            continue
        words = shlex.split(line)
        invocations.append(words[words.index("pytest") + 1 :])
    return invocations


def pytest_paths(arguments: list[str]) -> list[str]:
    paths, skip_next = [], False
    for argument in arguments:
        if skip_next:
            skip_next = False
        elif argument in ("-m", "-k", "-p", "-n"):
            skip_next = True
        elif not argument.startswith("-"):
            paths.append(argument)
    return paths


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, flags=re.MULTILINE))


def test_triggers_permissions_and_concurrency(workflow: dict[str, Node]) -> None:
    triggers = mapping(workflow["on"], "on")
    assert {"push", "pull_request"} <= set(triggers)
    assert workflow["permissions"] == {"contents": "read"}
    concurrency = mapping(workflow["concurrency"], "concurrency")
    assert concurrency["cancel-in-progress"] == "true"
    assert "github.ref" in text(concurrency["group"], "concurrency.group")


def test_the_jobs_exist_each_with_a_timeout(jobs: dict[str, dict[str, Node]]) -> None:
    assert set(jobs) >= REQUIRED_JOBS, f"missing jobs: {sorted(REQUIRED_JOBS - set(jobs))}"
    for name, job in jobs.items():
        assert job.get("runs-on") == "ubuntu-latest", name
        timeout = text(job.get("timeout-minutes", ""), f"{name}.timeout-minutes")
        assert timeout.isdigit(), f"job {name} has no timeout-minutes"
        assert 1 <= int(timeout) <= 60, f"job {name}: timeout-minutes {timeout}"


def test_every_job_sets_up_python_311_and_uv_cached_on_the_lock(
    jobs: dict[str, dict[str, Node]],
) -> None:
    for name in jobs:
        uses = {
            text(step["uses"], name).split("@")[0]: mapping(step.get("with", {}), name)
            for step in steps(jobs, name)
            if "uses" in step
        }
        assert text(steps(jobs, name)[0].get("uses", ""), name).startswith("actions/checkout@")
        assert uses["actions/setup-python"] == {"python-version": "3.11"}, name
        assert uses["astral-sh/setup-uv"] == {
            "enable-cache": "true",
            "cache-dependency-glob": "uv.lock",
        }, name


def test_actions_are_pinned_to_a_major_version(jobs: dict[str, dict[str, Node]]) -> None:
    for name in jobs:
        for step in steps(jobs, name):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", text(step["uses"], name)), step


def test_the_contracts_matrix_is_every_service_with_a_contract(
    jobs: dict[str, dict[str, Node]],
) -> None:
    # a proto that defines a gRPC service (contracts/kit/v1/options.proto defines none)
    services = sorted(
        proto.parent.parent.name
        for proto in ROOT.glob("contracts/*/v1/*.proto")
        if re.search(r"^service \w+", proto.read_text(), re.MULTILINE)
    )
    assert services, "no contracts/*/v1/*.proto found"
    axes = matrix(jobs["contracts"], "contracts")
    assert sorted(axes["service"]) == services
    assert len(axes["service"]) == len(set(axes["service"])), "a service appears twice"
    invocations = [
        arguments
        for script in commands(jobs, "contracts")
        for arguments in pytest_invocations(script)
    ]
    assert sorted(path for a in invocations for path in pytest_paths(a)) == sorted(
        f"contracts/{service}" for service in services
    )
    # the shipped artifact: the service's image, restored from the images job
    assert all("--harness-contract-target=image" in arguments for arguments in invocations)
    assert "images" in text(jobs["contracts"].get("needs", ""), "contracts")


def test_every_contract_suite_has_a_job_that_names_it(jobs: dict[str, dict[str, Node]]) -> None:
    named = [
        ROOT / path
        for name in jobs
        for script in commands(jobs, name)
        for arguments in pytest_invocations(script)
        for path in pytest_paths(arguments)
    ]
    for suite in sorted(ROOT.glob("contracts/**/test_*.py")):
        assert any(suite == path or path in suite.parents for path in named), (
            f"{suite.relative_to(ROOT)} is run by no job that names it"
        )


def test_every_script_and_make_target_a_run_names_exists(
    jobs: dict[str, dict[str, Node]],
) -> None:
    targets = make_targets()
    assert {"setup", "check"} <= targets
    checked = set()
    for name in jobs:
        for script in commands(jobs, name):
            for line in script.splitlines():
                if line.strip().startswith("#"):
                    continue
                for word in re.findall(r"[\w./-]+", line):
                    if word.startswith(TRACKED) or word.endswith((".py", ".sh")):
                        path = ROOT / word
                        assert path.exists(), f"job {name} runs {word}, which does not exist"
                        if word.endswith(".sh"):
                            assert os.access(path, os.X_OK), f"{word} is not executable"
                        checked.add(word)
                for arguments in re.findall(r"\bmake\s+([^;&|#\n]+)", line):
                    for target in arguments.split():
                        if not target.startswith("-") and "=" not in target:
                            assert target in targets, f"job {name}: no make target {target}"
                            checked.add(f"make {target}")
    assert {"scripts/images.py", "scripts/dockergen.py", "make check", "make setup"} <= checked


def test_the_lint_job_checks_the_generated_files(jobs: dict[str, dict[str, Node]]) -> None:
    """Dockerfiles and Kubernetes manifests fresh, and the manifests schema-valid: the lint
    job runs `make check`, whose recipe runs each generator's --check."""
    assert "make check" in "\n".join(commands(jobs, "lint"))
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^check:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe is not None, "the Makefile has no check target"
    for generator in ("scripts/codegen.py", "scripts/dockergen.py", "scripts/kubegen.py"):
        assert f"python {generator} --check" in recipe.group(1)


def test_the_images_job_builds_on_the_public_base(jobs: dict[str, dict[str, Node]]) -> None:
    script = "\n".join(commands(jobs, "images"))
    assert "docker pull python:3.11-slim" in script
    assert "uv run python scripts/images.py build" in script
    assert "uv run python scripts/dockergen.py --check" in script
    cached = [
        text(mapping(step.get("with", {}), "with").get("path", ""), "path")
        for step in steps(jobs, "images")
        if text(step.get("uses", ""), "uses").startswith("actions/cache")
    ]
    assert "build/wheelhouse" in cached
    assert "build/images.tar" in cached
    assert "images-key" in mapping(jobs["images"]["outputs"], "outputs")


def test_the_integration_tests_run_on_both_backends(jobs: dict[str, dict[str, Node]]) -> None:
    docker, process = jobs["integration"], jobs["integration-process"]
    needs = docker["needs"]
    assert needs == "images" or (isinstance(needs, list) and "images" in needs)
    docker_runs = [a for s in commands(jobs, "integration") for a in pytest_invocations(s)]
    process_runs = [a for s in commands(jobs, "integration-process") for a in pytest_invocations(s)]
    assert ["-n", "auto", "-m", "integration", "--harness-backend=docker", "-q"] in docker_runs
    # the harness's pytester runs (inner_run) pick their own backends: the docker job ran them
    process_only = "integration and not docker and not inner_run"
    assert ["-n", "auto", "-m", process_only, "--harness-backend=process", "-q"] in process_runs
    assert "needs" not in process, "the process backend needs no images: it runs at once"
    integration = "\n".join(commands(jobs, "integration"))
    assert "docker pull postgres:16" in integration
    # the compose smoke test's edge profile: the public Traefik image it looks for first
    assert "docker pull traefik:v3.7" in integration
    restore = [
        mapping(step["with"], "with")
        for step in steps(jobs, "integration")
        if text(step.get("uses", ""), "uses").startswith("actions/cache/restore@")
    ]
    assert restore, "the integration job restores the images job's images"
    assert restore[0]["key"] == "${{ needs.images.outputs.images-key }}"
    assert restore[0]["fail-on-cache-miss"] == "true"


def test_only_jobs_with_images_use_the_docker_backend(jobs: dict[str, dict[str, Node]]) -> None:
    for name, job in jobs.items():
        for script in commands(jobs, name):
            for arguments in pytest_invocations(script):
                backends = [a for a in arguments if a.startswith("--harness-backend")]
                assert backends in (
                    ["--harness-backend=docker"],
                    ["--harness-backend=process"],
                    [],
                ), f"job {name}: {arguments}"
                if backends == ["--harness-backend=docker"]:
                    assert "images" in str(job.get("needs", "")), name
