"""The harness keeps its shape: short modules that declare ``__all__``, one import path
(``harness``) for the repository's tests, and assertion helpers whose failures point at
the test's line."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import harness

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "harness" / "src" / "harness"
MAX_MODULE_LINES = 500
MODULES = sorted(PACKAGE.rglob("*.py"))

# The repository's own tests and what they are built on: they import from `harness` only.
# (scripts/ are tools that drive the plain code, e.g. a backend without pytest; the
# harness's own tests may import inner modules for what is not exported.)
TEST_SOURCES = sorted(
    {
        REPO / "conftest.py",
        *REPO.glob("tests/**/*.py"),
        *REPO.glob("services/*/tests/**/*.py"),
        *REPO.glob("packages/*/tests/**/*.py"),
        *REPO.glob("contracts/**/*.py"),
        *REPO.glob("fixtures/**/*.py"),
    }
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def declared_all(source: str) -> list[str] | None:
    """The names a module's top-level ``__all__ = [...]`` lists, or None without one."""
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and any(
                isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
            )
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            return [ast.literal_eval(element) for element in node.value.elts]
    return None


def inner_imports(source: str, *, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Imports of the harness's inner modules (``harness.x``), except of ``allowed`` names:
    each as ``module: names``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness."):
            names = [alias.name for alias in node.names if alias.name not in allowed]
            if names:
                found.append(f"{node.module}: {', '.join(names)}")
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.startswith("harness."))
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from harness import StackView\n", []),
        ("import harness\n", []),
        ("from harness.stacks import StackView\n", ["harness.stacks: StackView"]),
        ("import harness.traces\n", ["harness.traces"]),
        ("def f():\n    from harness.mocks import GrpcMock\n", ["harness.mocks: GrpcMock"]),
        ("from harnessing import x\n", []),
    ],
    ids=["harness", "import harness", "inner module", "import inner", "inside a function", "other"],
)
def test_inner_imports_are_found(source: str, expected: list[str]) -> None:
    assert inner_imports(source) == expected


def test_only_public_names_are_allowed_through_inner_modules() -> None:
    source = "from harness.postgres import PostgresServer, find_bindir\n"
    assert inner_imports(source, allowed=frozenset({"find_bindir"})) == [
        "harness.postgres: PostgresServer"
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('__all__ = ["a", "b"]\n', ["a", "b"]),
        ("__all__ = ()\n", []),
        ("a = 1\n", None),
        ("def f():\n    __all__ = ['a']\n", None),
    ],
    ids=["list", "empty tuple", "none", "not top level"],
)
def test_declared_all_is_read(source: str, expected: list[str] | None) -> None:
    assert declared_all(source) == expected


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_each_module_is_short_and_declares_what_it_exports(path: Path) -> None:
    source = path.read_text()
    lines = len(source.splitlines())
    assert lines <= MAX_MODULE_LINES, (
        f"{path.relative_to(REPO)} has {lines} lines (at most {MAX_MODULE_LINES}): split it "
        "by concern, as harness/README.md's map of modules shows"
    )
    names = declared_all(source)
    assert names is not None, f"{path.relative_to(REPO)} declares no __all__"
    module = importlib.import_module(module_name(path))
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ lists names it lacks: {missing}"


def test_no_two_modules_share_a_name() -> None:
    """Two ``docker.py`` (or ``server.py``) doing different things make a reader open the
    wrong one: each module's name is its own (``__init__.py`` aside)."""
    by_name: dict[str, list[str]] = {}
    for path in MODULES:
        if path.name != "__init__.py":
            by_name.setdefault(path.name, []).append(str(path.relative_to(PACKAGE)))
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}


def test_the_repositorys_tests_import_from_harness_only() -> None:
    offenders = {
        str(path.relative_to(REPO)): found
        for path in TEST_SOURCES
        if (found := inner_imports(path.read_text()))
    }
    assert not offenders, (
        "import these from `harness` (export them in harness/__init__.py if they are not): "
        f"{offenders}"
    )


def test_the_harnesss_own_tests_import_exported_names_from_harness() -> None:
    exported = frozenset(harness.__all__)
    internal = (
        frozenset().union(
            *(
                declared_all(path.read_text()) or []
                for path in MODULES
                if path.parent != PACKAGE or path.name != "__init__.py"
            )
        )
        - exported
    )
    offenders = {
        str(path.relative_to(REPO)): found
        for path in sorted((REPO / "harness" / "tests").glob("*.py"))
        if (found := inner_imports(path.read_text(), allowed=internal))
    }
    assert not offenders, f"exported by `harness`, so imported from there: {offenders}"


INI = """
[pytest]
asyncio_default_fixture_loop_scope = session
"""

FAILING = {
    "trace": """
from harness import Trace

def test_it():
    Trace([]).assert_single_trace()
""",
    "logs": """
from harness import Span, Trace, assert_logs_carry_trace

def test_it():
    span = Span("ab" * 16, "cd" * 8, None, "GetUser", "user", "SERVER", 1, 2, "UNSET")
    assert_logs_carry_trace([], Trace([span]))
""",
    "mock verification": """
from dummy.v1 import dummy_pb2_grpc
from harness import GrpcMock

def test_it():
    mock = GrpcMock.of(dummy_pb2_grpc.DummyServiceStub)
    mock.verify(lambda stub: stub.GetEntity).called_once()
""",
    "mock errors": """
import grpc
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from harness import GrpcMocks

def test_it():
    with GrpcMocks() as mocks:
        mock = mocks.of(dummy_pb2_grpc.DummyServiceStub)
        mock.when(lambda stub: stub.GetEntity).responds(lambda call: 1 / 0)
        with mock.serving() as address, grpc.insecure_channel(address) as channel:
            try:
                dummy_pb2_grpc.DummyServiceStub(channel).GetEntity(dummy_pb2.GetEntityRequest())
            except grpc.RpcError:
                pass  # UNKNOWN, and the error kept
        mocks.assert_no_errors()
""",
    "fake errors": """
import httpx
from harness import FakeError, HttpFakeServer

def test_it():
    server = HttpFakeServer()
    server.errors.append(FakeError(httpx.Request("GET", "http://fake/"), "boom"))
    server.raise_errors()
""",
}


@pytest.mark.parametrize("test", FAILING.values(), ids=FAILING.keys())
def test_a_failed_assertion_points_at_the_tests_line(pytester: pytest.Pytester, test: str) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_failing=test)
    result = pytester.runpytest("-p", "no:randomly", "--tb=long")
    result.assert_outcomes(failed=1)
    # the last frame shown is the test's own line; none is the harness's
    result.stdout.fnmatch_lines(["test_failing.py:*: *Error"])
    result.stdout.no_fnmatch_line("*harness/src/harness/*.py:*")
