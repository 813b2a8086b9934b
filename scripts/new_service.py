"""Write a new gRPC service from the kit's template, wired in everywhere a service must be.

    make new-service NAME=orders
    uv run python scripts/new_service.py orders

It writes, from scripts/service_template/ ({{name}}, {{Name}}, {{NAME}}, {{port}} filled in):

- contracts/<name>/v1/<name>.proto: two RPCs (CreateItem, GetItem), their rules, the codes
  each may return (``option (kit.v1.may_return)``);
- contracts/<name>/: its contract suite, and the conftest.py that serves the service to it;
- services/<name>/: the package (settings, main on servicekit's ServiceDefinition/run_main,
  servicer, one module per RPC, the repository port with its PostgreSQL adapter and
  in-memory fake, errors, client), its migration, unit tests, README and pyproject.toml,
  whose ``[tool.kit.service]`` (the next free gRPC port) registers it with the harness
  (stacks, databases, mocks), dockergen and kubegen;

and wires it in: the root pyproject.toml (workspace dependency and source, mypy's path,
ruff's first-party names), compose.yaml (its service and database), .env.example (its
image and published port). Then it regenerates: uv.lock and the environment (``uv lock``,
offline first, ``uv sync``), the gRPC code (codegen.py), its Dockerfile (dockergen.py) and the
Kubernetes manifests (kubegen.py), and formats the new Python files (ruff).

A bad or taken name is refused before anything is written; when a step after the writing
fails, every file it wrote or changed is put back as it was.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "service_template"
# Lower-case letters and digits: a Python package, a proto package, an environment prefix,
# a Kubernetes name and a Postgres database all take it as it is.
NAME = re.compile(r"[a-z][a-z0-9]{1,19}")
# Names that would shadow what the kit imports or the repository's own folders.
RESERVED = frozenset(
    {"kit", "servicekit", "harness", "contracts", "fixtures", "tests", "scripts", "deploy"}
    | {"services", "packages", "examples", "images", "docs", "postgres", "traefik", "jaeger"}
)
KUBERNETES_TREE = Path("deploy/kubernetes")


class ScaffoldError(Exception):
    """The service cannot be written; the message says why and what to do."""


@dataclass
class Plan:
    """Every file the scaffold writes (new) or changes (edited), decided before writing."""

    root: Path
    name: str
    port: int
    new: dict[Path, str] = field(default_factory=dict)
    edited: dict[Path, str] = field(default_factory=dict)


def check_name(root: Path, name: str) -> None:
    if not NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a service name: 2 to 20 lower-case letters and digits, "
            "starting with a letter (e.g. orders)"
        )
    if keyword.iskeyword(name) or name in sys.stdlib_module_names or name in RESERVED:
        raise ScaffoldError(f"{name!r} is taken by Python or the kit itself: choose another name")
    taken = [p for p in (Path("services") / name, Path("contracts") / name) if (root / p).exists()]
    if taken or name in workspace_members(root):
        where = ", ".join(str(p) for p in taken) or "the workspace"
        raise ScaffoldError(f"a service named {name!r} exists already ({where})")
    if importlib.util.find_spec(name) is not None:
        raise ScaffoldError(f"{name!r} is the name of an installed module: choose another name")


def workspace_members(root: Path) -> dict[str, dict[str, object]]:
    """Each workspace member's name -> its [tool.kit.service] table (empty when not a service)."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config.get("tool", {}).get("uv", {}).get("workspace", {}).get("members")
    if not patterns:
        raise ScaffoldError(f"{root / 'pyproject.toml'} has no [tool.uv.workspace] members")
    members = {}
    for pattern in patterns:
        for pyproject in sorted(root.glob(f"{pattern}/pyproject.toml")):
            project = tomllib.loads(pyproject.read_text())
            service = project.get("tool", {}).get("kit", {}).get("service", {})
            members[project["project"]["name"]] = dict(service)
    return members


def next_port(root: Path) -> int:
    """One past the highest gRPC port of the workspace's services (50051 for the first)."""
    ports = [int(str(s["grpc-port"])) for s in workspace_members(root).values() if "grpc-port" in s]
    return max(ports, default=50050) + 1


def render(text: str, name: str, port: int) -> str:
    values = {"name": name, "Name": name.capitalize(), "NAME": name.upper(), "port": str(port)}
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.search(r"\{\{\w*\}\}", text)
    if left:
        raise ScaffoldError(f"the template holds an unknown placeholder {left.group()}")
    return text


def template_files(name: str, port: int) -> dict[Path, str]:
    files = {}
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE).as_posix().removesuffix(".tmpl")
        files[Path(render(relative, name, port))] = render(source.read_text(), name, port)
    if not files:
        raise ScaffoldError(f"no template under {TEMPLATE}")
    return files


def _edit(text: str, pattern: str, replace: str, what: str, path: str) -> str:
    """``text`` with the one match of ``pattern`` (multiline) replaced, or a clear error."""
    edited, count = re.subn(pattern, replace, text, count=1, flags=re.MULTILINE)
    if count != 1:
        raise ScaffoldError(f"{path}: cannot find {what} to add the service to; add it by hand")
    return edited


def edit_pyproject(text: str, name: str) -> str:
    where = "pyproject.toml"
    text = _edit(
        text,
        r'^(dependencies = \[[^\]\n]*)"\]$',
        rf'\1", "{name}"]',
        "the [project] dependencies (one line)",
        where,
    )
    text = _edit(
        text,
        r"^(\[tool\.uv\.sources\]\n(?:\S+ = \{ workspace = true \}\n)+)",
        rf"\1{name} = {{ workspace = true }}\n",
        "the [tool.uv.sources] workspace entries",
        where,
    )
    text = _edit(
        text,
        r'^((?:    "services/[^"\n]+/src",\n)+)',
        rf'\1    "services/{name}/src",\n',
        "mypy_path's service folders",
        where,
    )
    return _edit(
        text,
        r'^(known-first-party = \[[^\]\n]*)"\]$',
        rf'\1", "{name}"]',
        "ruff's known-first-party (one line)",
        where,
    )


def edit_compose(text: str, name: str, port: int) -> str:
    upper = name.upper()
    block = (
        f"  {name}:\n"
        "    <<: *service\n"
        f"    image: ${{{upper}_IMAGE:-kit/{name}:local}}\n"
        "    environment:\n"
        f"      {upper}_DATABASE_URL: postgresql://${{POSTGRES_USER}}:${{POSTGRES_PASSWORD}}"
        f"@postgres:5432/{name}\n"
        f"      {upper}_LOG_LEVEL: ${{LOG_LEVEL:-INFO}}\n"
        "    ports:\n"
        f'      - "${{{upper}_PUBLISH:-127.0.0.1:{port}}}:{port}"\n\n'
    )
    where = "compose.yaml"
    text = _edit(
        text, r"^(      SERVICE_DATABASES: [^\n]*)$", rf"\1 {name}", "SERVICE_DATABASES", where
    )
    return _edit(text, r"^(?=  gateway:\n)", block.replace("\\", "\\\\"), "the gateway", where)


def edit_env_example(text: str, name: str, port: int) -> str:
    upper, where = name.upper(), ".env.example"
    text = _edit(
        text,
        r"^(# --- Postgres \(one database per service: [^)]*)\)",
        rf"\1, {name})",
        "the Postgres heading",
        where,
    )
    text = _edit(
        text, r"^(?=GATEWAY_IMAGE=)", f"{upper}_IMAGE=kit/{name}:local\n", "GATEWAY_IMAGE", where
    )
    return _edit(
        text,
        r"^(?=GATEWAY_PUBLISH=)",
        f"{upper}_PUBLISH=127.0.0.1:{port}\n",
        "GATEWAY_PUBLISH",
        where,
    )


def plan(root: Path, name: str) -> Plan:
    check_name(root, name)
    port = next_port(root)
    result = Plan(root, name, port, new=template_files(name, port))
    editors: dict[Path, Callable[[str], str]] = {
        Path("pyproject.toml"): lambda text: edit_pyproject(text, name),
        Path("compose.yaml"): lambda text: edit_compose(text, name, port),
        Path(".env.example"): lambda text: edit_env_example(text, name, port),
    }
    for path, editor in editors.items():
        if not (root / path).exists():
            raise ScaffoldError(f"{root / path} is missing: not a checkout of the kit")
        result.edited[path] = editor((root / path).read_text())
    return result


@contextmanager
def undo_on_failure(plan: Plan) -> Iterator[None]:
    """Put every file back as it was when the block fails: new folders removed, edited
    files, uv.lock and the Kubernetes manifests restored."""
    root = plan.root
    kept = {
        p: (root / p).read_text() for p in [*plan.edited, Path("uv.lock")] if (root / p).exists()
    }
    with tempfile.TemporaryDirectory(prefix="new-service-") as scratch:
        tree = root / KUBERNETES_TREE
        saved_tree = Path(scratch) / "kubernetes"
        if tree.exists():
            shutil.copytree(tree, saved_tree)
        try:
            yield
        except BaseException:
            for folder in ("services", "contracts"):
                shutil.rmtree(root / folder / plan.name, ignore_errors=True)
            for path, text in kept.items():
                (root / path).write_text(text)
            if saved_tree.exists():
                shutil.rmtree(tree, ignore_errors=True)
                shutil.copytree(saved_tree, tree)
            raise


def write(plan: Plan) -> None:
    for path, text in {**plan.new, **plan.edited}.items():
        target = plan.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def run(root: Path, *command: str) -> None:
    print("+", " ".join(command), flush=True)
    # uv picks the checkout's own environment, not the one this script may run in
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise ScaffoldError(f"{' '.join(command)} failed (exit {done.returncode}):\n{output}")


def regenerate(plan: Plan) -> None:
    """The lock, the environment and every generated file, now that the service is there."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise ScaffoldError("uv is not on PATH: run this as `make new-service NAME=...`")
    root, python = plan.root, [uv, "run", "--no-sync", "python"]
    # From uv's cache first: the new service needs nothing the lock does not hold already,
    # and online `uv lock` revalidates every package's index page (some 300 requests: 1 s
    # of 1.2 s here, and it needs the network). A cache without them: online after all.
    try:
        run(root, uv, "lock", "--offline")
    except ScaffoldError:
        run(root, uv, "lock")
    run(root, uv, "sync", "--locked", "--compile-bytecode")
    new_python = sorted(str(p) for p in plan.new if p.suffix == ".py")
    # the imports sorted and __all__ ordered for this name, the lines fitted to it
    run(root, *python, "-m", "ruff", "check", "--quiet", "--fix", "--exit-zero", *new_python)
    run(root, *python, "-m", "ruff", "format", "--quiet", *new_python)
    run(root, *python, "-m", "ruff", "check", "--quiet", *new_python)
    run(root, *python, "scripts/codegen.py", "--quiet")
    run(root, *python, "scripts/dockergen.py")
    run(root, *python, "scripts/kubegen.py")


def new_service(root: Path, name: str, *, generate: bool = True) -> Plan:
    """Write the service ``name`` into the checkout at ``root``; ScaffoldError when it cannot."""
    result = plan(root, name)
    with undo_on_failure(result):
        write(result)
        if generate:
            regenerate(result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the service's name: lower-case letters and digits")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout (default: this one)")
    args = parser.parse_args(argv)
    try:
        result = new_service(args.root.resolve(), args.name)
    except ScaffoldError as error:
        print(f"new-service: {error}", file=sys.stderr)
        return 2
    name = result.name
    print(
        f"\nservice {name} written (gRPC port {result.port}): services/{name}, contracts/{name}\n"
        f"  its contract suite:  uv run pytest contracts/{name}\n"
        f"  its unit tests:      uv run pytest services/{name}\n"
        "  everything checked:  make check\n"
        f"  then accept its new contract: uv run python scripts/protoguard.py --accept"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
