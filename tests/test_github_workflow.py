"""The GitHub Actions workflow (.github/workflows/ci.yml), checked without GitHub.

GitHub cannot run here, so the workflow is made correct by construction and this module
checks its structure: the jobs, a timeout on each, the contracts matrix against
contracts/*/v1/*.proto, every script and make target that a `run:` names, and the
integration tests on both harness backends. No network, no Docker.

PyYAML is not among this workspace's dependencies, so the file is read by a small parser
of the plain YAML subset the workflow keeps to (block mappings and sequences, `|` blocks,
`[a, b]` lists, plain or quoted scalars). Anything outside the subset is an error, never a
silent misreading; where PyYAML is importable, a test checks that both read the file alike.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from pathlib import Path
from typing import TypeAlias

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

Node: TypeAlias = str | list["Node"] | dict[str, "Node"]


# ---------------------------------------------------------------- the YAML subset


class YamlSubsetError(ValueError):
    """The text leaves the subset this parser reads (or is not YAML at all)."""


KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.-]*):(?: +|$)")
FLOW_ITEM = re.compile(r"[^\s\[\]{},'\"#&*!|>%@`][^\[\]{},#]*")
ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _indentation(raw: str) -> int:
    return len(raw) - len(raw.lstrip(" "))


class _Parser:
    def __init__(self, text: str) -> None:
        if "\t" in text:
            raise YamlSubsetError("tabs are not in the subset")
        self.lines = text.splitlines()
        self.index = 0

    def error(self, problem: str) -> YamlSubsetError:
        return YamlSubsetError(f"line {self.index + 1}: {problem}")

    def peek(self) -> tuple[int, str] | None:
        """The next line that holds content: its indentation and its stripped text."""
        while self.index < len(self.lines):
            stripped = self.lines[self.index].strip()
            if stripped in ("---", "..."):
                raise self.error("document markers are not in the subset")
            if stripped and not stripped.startswith("#"):
                return _indentation(self.lines[self.index]), stripped
            self.index += 1
        return None

    def document(self) -> Node:
        line = self.peek()
        if line is None:
            return ""
        if line[0] != 0:
            raise self.error("the document starts indented")
        node = self.node(0)
        if self.peek() is not None:
            raise self.error("content after the document's top level")
        return node

    def node(self, indent: int) -> Node:
        line = self.peek()
        assert line is not None
        return self.sequence(indent) if _is_item(line[1]) else self.mapping(indent)

    def mapping(self, indent: int) -> dict[str, Node]:
        result: dict[str, Node] = {}
        while (line := self.peek()) is not None and line[0] == indent and not _is_item(line[1]):
            match = KEY.match(line[1])
            if match is None:
                raise self.error(f"expected `key: value`, got {line[1]!r}")
            key = match.group(1)
            if key in result:
                raise self.error(f"duplicate key {key!r}")
            self.index += 1
            result[key] = self.value(line[1][match.end() :], indent, under_key=True)
        if line is not None and line[0] > indent:
            raise self.error("unexpected indentation")
        return result

    def sequence(self, indent: int) -> list[Node]:
        result: list[Node] = []
        while (line := self.peek()) is not None and line[0] == indent and _is_item(line[1]):
            after = line[1][1:].lstrip(" ")
            if KEY.match(after):
                # `- key: value`: a mapping whose keys are aligned with `key`
                column = indent + len(line[1]) - len(after)
                self.lines[self.index] = " " * column + after
                result.append(self.mapping(column))
            else:
                self.index += 1
                result.append(self.value(after, indent, under_key=False))
        return result

    def value(self, rest: str, indent: int, *, under_key: bool) -> Node:
        if rest == "" or rest.startswith("#"):
            line = self.peek()
            if line is None or line[0] < indent:
                return ""
            if line[0] > indent:
                return self.node(line[0])
            # a sequence may sit at its key's own indentation
            return self.sequence(indent) if under_key and _is_item(line[1]) else ""
        if rest.split(" #")[0].rstrip() in ("|", "|-"):
            return self.block(indent, keep_newline=not rest.startswith("|-"))
        return self.scalar(rest)

    def block(self, indent: int, *, keep_newline: bool) -> str:
        """A literal block scalar (`|` or `|-`): the lines more indented than its key."""
        lines: list[str] = []
        block_indent: int | None = None
        while self.index < len(self.lines):
            raw = self.lines[self.index]
            if raw.strip() == "":
                lines.append("")
                self.index += 1
                continue
            current = _indentation(raw)
            if current <= indent:
                break
            if block_indent is None:
                block_indent = current
            elif current < block_indent:
                raise self.error("a block scalar's line is less indented than its first")
            lines.append(raw[block_indent:])
            self.index += 1
        while lines and lines[-1] == "":
            lines.pop()
        if not lines:
            return ""
        return "\n".join(lines) + ("\n" if keep_newline else "")

    def scalar(self, text: str) -> Node:
        if text[0] == '"':
            return self.double_quoted(text)
        if text[0] == "'":
            end = 1
            while True:
                end = text.find("'", end)
                if end == -1:
                    raise self.error("unterminated single-quoted scalar")
                if text[end + 1 : end + 2] != "'":
                    break
                end += 2
            self.rest_is_comment(text[end + 1 :])
            return text[1:end].replace("''", "'")
        plain = text.split(" #")[0].rstrip()
        if plain.startswith("["):
            if not plain.endswith("]"):
                raise self.error("a flow sequence must close on its own line")
            items = [item.strip() for item in plain[1:-1].split(",")]
            if items == [""]:
                return []
            for item in items:
                if not FLOW_ITEM.fullmatch(item):
                    raise self.error(f"flow sequence item {item!r} is not a plain scalar")
            sequence: list[Node] = [*items]
            return sequence
        if plain[0] in "{&*!|>%@`?" or _is_item(plain):
            raise self.error(
                f"{plain!r}: flow mappings, anchors, aliases, tags, folded blocks, "
                "nested `- -` and complex keys are not in the subset"
            )
        if ": " in plain or plain.endswith(":"):
            raise self.error(f"{plain!r}: a plain scalar may not hold `: `; quote it")
        return plain

    def double_quoted(self, text: str) -> str:
        out: list[str] = []
        position = 1
        while position < len(text):
            char = text[position]
            if char == '"':
                self.rest_is_comment(text[position + 1 :])
                return "".join(out)
            if char == "\\":
                escape = text[position + 1 : position + 2]
                if escape not in ESCAPES:
                    raise self.error(f"escape \\{escape} is not in the subset")
                out.append(ESCAPES[escape])
                position += 2
                continue
            out.append(char)
            position += 1
        raise self.error("unterminated double-quoted scalar (multi-line ones are not read)")

    def rest_is_comment(self, rest: str) -> None:
        if rest.strip() and not rest.startswith(" #") and not rest.strip().startswith("#"):
            raise self.error(f"unexpected {rest!r} after a quoted scalar")


def parse_yaml_subset(text: str) -> Node:
    """``text`` read as YAML's base loader reads it (every scalar a string, null as "")."""
    return _Parser(text).document()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb:\n  c: x y  # note\n", {"a": "1", "b": {"c": "x y"}}),
        ("on:\n  push:\n  pull_request:\n", {"on": {"push": "", "pull_request": ""}}),
        ("k:\n- a\n- 'b''s'\n", {"k": ["a", "b's"]}),
        ("k:\n  - x: 1\n    y: [a, b]\n  - z\n", {"k": [{"x": "1", "y": ["a", "b"]}, "z"]}),
        ('k: "a: \\"b\\" # c"\n', {"k": 'a: "b" # c'}),
        ("k: |\n  one\n\n    two\n  # three\nl: 2\n", {"k": "one\n\n  two\n# three\n", "l": "2"}),
        ("k: |-\n  one\n", {"k": "one"}),
        ("k: ${{ a.b }}\n", {"k": "${{ a.b }}"}),
    ],
    ids=["nested", "null", "sequence", "items", "double-quoted", "block", "block-strip", "expr"],
)
def test_the_parser_reads_the_subset(text: str, expected: Node) -> None:
    assert parse_yaml_subset(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a: &anchor 1\n",
        "a: {b: 1}\n",
        "a: >\n  folded\n",
        "a: 1\na: 2\n",
        "a: b: c\n",
        "a:\n\tb: 1\n",
        "a: 'open\n",
        "a: 1\n   b: 2\n",
        "- - nested\n",
    ],
    ids=["anchor", "flow-map", "folded", "duplicate", "colon", "tab", "open", "indent", "nested"],
)
def test_the_parser_refuses_what_it_does_not_read(text: str) -> None:
    with pytest.raises(YamlSubsetError):
        parse_yaml_subset(text)


def test_the_parser_reads_the_workflow_as_pyyaml_does() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed in this environment")
    text = WORKFLOW.read_text()
    assert parse_yaml_subset(text) == yaml.load(text, Loader=yaml.BaseLoader)


# ---------------------------------------------------------------- the workflow

REQUIRED_JOBS = {"lint", "unit", "contracts", "images", "integration", "integration-process"}
# Folders of this repository a `run:` may name; each named path must exist.
TRACKED = ("scripts/", "images/", "contracts/", "tests/", "services/", "packages/", "harness/")
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
    return mapping(parse_yaml_subset(WORKFLOW.read_text()), WORKFLOW.name)


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
    services = sorted(proto.parent.parent.name for proto in ROOT.glob("contracts/*/v1/*.proto"))
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
    assert all("--harness-backend=process" in arguments for arguments in invocations)


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
    assert ["-m", "integration", "--harness-backend=docker", "-q"] in docker_runs
    assert ["-m", "integration and not docker", "--harness-backend=process", "-q"] in process_runs
    assert "needs" not in process, "the process backend needs no images: it runs at once"
    assert "docker pull postgres:16" in "\n".join(commands(jobs, "integration"))
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
