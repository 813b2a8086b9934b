"""scripts/new_service.py: names refused before anything is written, the wiring it plans,
the undo when a step fails, and (integration) a service written into a copy of this
checkout that passes the checks of `make check` and its own contract suite unedited."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import new_service  # noqa: E402
from new_service import ScaffoldError, check_name, plan  # noqa: E402

from harness import find_postgres_binaries, workspace_services  # noqa: E402


def copy_checkout(into: Path) -> Path:
    """The files git knows of (tracked, or new and not ignored): no .venv, no caches."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree is still listed
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def seed_environment(copy: Path) -> None:
    """This checkout's environment as the copy's, its installed files hard-linked, so that
    the scaffold's `uv sync` finds what `make setup` leaves in a checkout: it installs the
    new service and points the workspace members at the copy, instead of installing and
    compiling every dependency again (half of this test's time). The scripts in bin/ name
    their interpreter: they are copied, naming the copy's. No environment here, or one on
    another file system: the copy's `uv sync` makes its own."""
    venv, seeded = ROOT / ".venv", copy / ".venv"
    if not (venv / "pyvenv.cfg").is_file():
        return
    try:
        shutil.copytree(venv / "lib", seeded / "lib", symlinks=True, copy_function=os.link)
    except (OSError, shutil.Error):
        shutil.rmtree(seeded, ignore_errors=True)
        return
    for entry in venv.iterdir():
        if entry.name == "lib":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, seeded / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, seeded / entry.name, follow_symlinks=False)
    for script in (seeded / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            text = script.read_bytes()
            script.write_bytes(text.replace(bytes(venv), bytes(seeded)))


def seed_mypy_cache(copy: Path) -> None:
    """What `make check` left of mypy's cache here, for mypy in the copy: it re-analyses
    every module whose source differs (mypy compares hashes when paths differ), the new
    service's among them, and keeps what it had for grpc, protobuf, pydantic..."""
    cache = ROOT / ".mypy_cache"
    if cache.is_dir():
        shutil.copytree(cache, copy / ".mypy_cache", symlinks=True)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Orders", "not a service name"),
        ("9lives", "not a service name"),
        ("order-book", "not a service name"),
        ("order_book", "not a service name"),
        ("x", "not a service name"),
        ("a" * 21, "not a service name"),
        ("import", "taken by Python or the kit"),
        ("json", "taken by Python or the kit"),
        ("harness", "taken by Python or the kit"),
        ("grpc", "installed module"),
        ("dummy", "a service named 'dummy' exists already (services/dummy, contracts/dummy)"),
    ],
)
def test_a_bad_or_taken_name_is_refused_saying_why(name: str, says: str) -> None:
    with pytest.raises(ScaffoldError) as refused:
        check_name(ROOT, name)
    assert says in str(refused.value)


def test_the_plan_wires_the_service_in_everywhere() -> None:
    planned = plan(ROOT, "orders")
    assert planned.port == 1 + max(s.grpc_port for s in workspace_services(ROOT))
    assert {
        Path("contracts/orders/v1/orders.proto"),
        Path("contracts/orders/test_orders_contract.py"),
        Path("contracts/orders/conftest.py"),
        Path("services/orders/pyproject.toml"),
        Path("services/orders/README.md"),
        Path("services/orders/src/orders/main.py"),
        Path("services/orders/src/orders/repository/postgres.py"),
        Path("services/orders/src/orders/repository/memory.py"),
        Path("services/orders/src/orders/migrations/0001_create_items.sql"),
        Path("services/orders/tests/test_rpc.py"),
    } <= set(planned.new)
    proto = planned.new[Path("contracts/orders/v1/orders.proto")]
    assert "package orders.v1;" in proto
    assert "service OrdersService {" in proto
    assert "option (kit.v1.may_return) = { codes: [INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE] }" in (
        proto
    )
    service = tomllib.loads(planned.new[Path("services/orders/pyproject.toml")])
    assert service["tool"]["kit"]["service"] == {"grpc-port": planned.port}

    root = tomllib.loads(planned.edited[Path("pyproject.toml")])
    assert "orders" in root["project"]["dependencies"]
    assert root["tool"]["uv"]["sources"]["orders"] == {"workspace": True}
    assert "services/orders/src" in root["tool"]["mypy"]["mypy_path"]
    assert "orders" in root["tool"]["ruff"]["lint"]["isort"]["known-first-party"]

    compose = yaml.safe_load(planned.edited[Path("compose.yaml")])
    orders = compose["services"]["orders"]
    assert orders["image"] == "${ORDERS_IMAGE:-kit/orders:local}"
    assert orders["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert orders["environment"]["ORDERS_DATABASE_URL"].endswith("@postgres:5432/orders")
    assert orders["ports"] == [f"${{ORDERS_PUBLISH:-127.0.0.1:{planned.port}}}:{planned.port}"]
    databases = compose["services"]["postgres"]["environment"]["SERVICE_DATABASES"].split()
    assert databases[-1] == "orders"

    env = planned.edited[Path(".env.example")].splitlines()
    assert "ORDERS_IMAGE=kit/orders:local" in env
    assert f"ORDERS_PUBLISH=127.0.0.1:{planned.port}" in env


def test_a_checkout_it_cannot_wire_into_is_refused_before_writing(tmp_path: Path) -> None:
    root = copy_checkout(tmp_path)
    compose = root / "compose.yaml"
    compose.write_text(compose.read_text().replace("  gateway:\n", "  edge:\n"))
    before = tree_digest(root)
    with pytest.raises(ScaffoldError, match=r"compose\.yaml: cannot find the gateway"):
        new_service.new_service(root, "orders")
    assert tree_digest(root) == before


def test_a_failing_step_puts_every_file_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_checkout(tmp_path)
    before = tree_digest(root)

    def fails_half_way(planned: new_service.Plan) -> None:
        assert (root / "services/orders/src/orders/main.py").exists()
        (root / "uv.lock").write_text("half-written")
        (root / "deploy/kubernetes/base/orders.yaml").write_text("half-written")
        raise ScaffoldError("uv lock failed")

    monkeypatch.setattr(new_service, "regenerate", fails_half_way)
    with pytest.raises(ScaffoldError, match="uv lock failed"):
        new_service.new_service(root, "orders")
    assert tree_digest(root) == before


@pytest.mark.parametrize(
    ("cached", "locks"),
    [(True, [["lock", "--offline"]]), (False, [["lock", "--offline"], ["lock"]])],
    ids=["from-uv-cache", "online-when-the-cache-lacks-it"],
)
def test_the_lock_is_made_offline_first(
    monkeypatch: pytest.MonkeyPatch, cached: bool, locks: list[list[str]]
) -> None:
    ran: list[list[str]] = []

    def records(root: Path, *command: str) -> None:
        ran.append(list(command[1:]))
        if command[1:] == ("lock", "--offline") and not cached:
            raise ScaffoldError("uv lock --offline failed (exit 1)")

    monkeypatch.setenv("UV", "uv")
    monkeypatch.setattr(new_service, "run", records)
    new_service.regenerate(plan(ROOT, "orders"))
    assert [command for command in ran if command[0] == "lock"] == locks
    assert ran[len(locks)] == ["sync", "--locked", "--compile-bytecode"]


def run(root: Path, *command: str, timeout: float = 300) -> str:
    # the copy's own environment (seeded from this one, synced by the scaffold), not this run's
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and "PYTEST" not in k}
    done = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, (
        f"{' '.join(command)} failed:\n{output[:3000]}\n...\n{output[-3000:]}"
    )
    return output


# inner_run: the copy's own pytest runs its suites (in-process); the outer backend does not
# change it, so CI's second pass on the process backend leaves it out
@pytest.mark.integration
@pytest.mark.inner_run
def test_a_new_service_passes_the_checks_and_its_contract_suite_unedited(tmp_path: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv runs this test (make test) and the scaffold"
    root = copy_checkout(tmp_path)
    seed_environment(root)
    seed_mypy_cache(root)
    # the longest name allowed: every line written must still fit ruff's 100 columns
    name = "longestpossiblename1"
    assert len(name) == 20
    said = run(root, sys.executable, str(root / "scripts/new_service.py"), name)
    assert f"service {name} written" in said

    assert (root / f"services/{name}/Dockerfile").exists()
    assert f"name: {name}" in (root / f"deploy/kubernetes/base/{name}.yaml").read_text()
    spec = next(s for s in workspace_services(root) if s.name == name)
    assert (spec.database, spec.proto) == (name, f"{name}.v1.{name}_pb2")
    assert not [
        pth.name
        for pth in (root / ".venv/lib").glob("python*/site-packages/*.pth")
        if str(ROOT) in pth.read_text()
    ], "the copy's environment would import the workspace members from this checkout"

    uv_python = (uv, "run", "--locked", "python")
    suites = (f"contracts/{name}", f"services/{name}")
    # this run's server programs: the copy's own may sit where the account Postgres runs as
    # (nobody, when the tests run as root) cannot reach, under pytest's private tmp folder
    postgres = f"--harness-postgres-bin={find_postgres_binaries(None).bindir}"
    checks = [
        *(
            [*uv_python, f"scripts/{script}", "--check"]
            for script in ("codegen.py", "dockergen.py", "kubegen.py")
        ),
        [*uv_python, "scripts/protoguard.py"],
        [*uv_python, "-m", "ruff", "check", "."],
        [*uv_python, "-m", "ruff", "format", "--check", "."],
        [*uv_python, "-m", "mypy", f"services/{name}", f"contracts/{name}"],
        [*uv_python, "-m", "pytest", "-p", "no:randomly", "-n", "0", "-q", *suites, postgres],
    ]
    # side by side (a third of the time on two cores): none writes what another reads
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        *_, ran = pool.map(lambda command: run(root, *command), checks)
    assert " passed" in ran
    assert "failed" not in ran
    assert "skipped" not in ran
