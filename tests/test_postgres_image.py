"""The local PostgreSQL image (harness/src/harness/images/base/postgres) behaves like the
public postgres image.

The image is built once for this module from kit/debian:bookworm (base/debian/build.sh there)
and run the way compose files and testcontainers run ``postgres:16``: POSTGRES_USER,
POSTGRES_PASSWORD and POSTGRES_DB, init scripts in /docker-entrypoint-initdb.d, the port
published on 127.0.0.1, readiness read from the log ("ready to accept connections" twice
on a first start: the temporary server, then the real one) and from ``docker exec``.

Everything the module creates carries one label; the teardown removes every container
(with its anonymous volume) and image with that label, whatever happened in between.
"""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.integration]

IMAGE_CONTEXT = (
    Path(__file__).resolve().parents[1]
    / "harness"
    / "src"
    / "harness"
    / "images"
    / "base"
    / "postgres"
)
BASE_IMAGE = "kit/debian:bookworm"
READY = "database system is ready to accept connections"
MISSING_PASSWORD = "Database is uninitialized and superuser password is not specified"
START_TIMEOUT = 60.0
APP_USER = "app"
APP_DATABASE = "appdb"
BUILD_TIMEOUT = 600.0


class DockerError(Exception):
    """A docker command failed, or a container did not do what was awaited."""


def log_tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Docker:
    """The docker CLI; everything created through it carries ``label`` (``key=value``)."""

    executable: str
    label: str

    def __call__(
        self,
        *args: str,
        timeout: float = 60.0,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
        if check and result.returncode != 0:
            raise DockerError(
                f"`docker {' '.join(args)}` exited with {result.returncode}:\n"
                f"{log_tail(result.stdout + result.stderr)}"
            )
        return result

    def build(self, context: Path, tag: str) -> None:
        # the legacy builder: this engine has no BuildKit
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        args = ("build", "--force-rm", "--label", self.label, "-t", tag, str(context))
        self(*args, timeout=BUILD_TIMEOUT, env=env)

    @contextmanager
    def run(
        self,
        image: str,
        *command: str,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
    ) -> Iterator[Container]:
        """A detached container, removed with its anonymous volumes on the way out."""
        env_args = [arg for name, value in (env or {}).items() for arg in ("-e", f"{name}={value}")]
        container_id = self(
            "run", "-d", "--label", self.label, *env_args, *options, image, *command
        ).stdout.strip()
        try:
            yield Container(self, container_id)
        finally:
            self("rm", "-f", "-v", container_id, check=False)

    def remove_everything(self) -> None:
        """Remove every container and image carrying this CLI's label."""
        containers = self("ps", "-aq", "--filter", f"label={self.label}", check=False)
        if ids := containers.stdout.split():
            self("rm", "-f", "-v", *ids, check=False)
        images = self("images", "-q", "--filter", f"label={self.label}", check=False)
        if ids := sorted(set(images.stdout.split())):
            self("rmi", "-f", *ids, check=False)


@dataclass(frozen=True)
class Container:
    docker: Docker
    id: str

    def logs(self) -> str:
        result = self.docker("logs", self.id)
        return result.stdout + result.stderr

    def inspect(self, template: str) -> str:
        return self.docker("inspect", "-f", template, self.id).stdout.strip()

    def host_port(self, container_port: int = 5432) -> int:
        # "127.0.0.1:49153"; asked each time: a restart may publish another port
        published = self.docker("port", self.id, f"{container_port}/tcp").stdout.split()
        return int(published[0].rsplit(":", 1)[1])

    def exec(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.docker("exec", self.id, *args, check=False)

    def wait_for_log(self, text: str, occurrences: int, timeout: float = START_TIMEOUT) -> None:
        """Poll the log until ``text`` appears ``occurrences`` times; fail fast on exit."""
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs()
            if logs.count(text) >= occurrences:
                return
            if self.inspect("{{.State.Running}}") != "true":
                raise DockerError(
                    f"container {self.id[:12]} exited before logging {text!r} "
                    f"{occurrences} time(s):\n{log_tail(logs)}"
                )
            if time.monotonic() > deadline:
                raise DockerError(
                    f"container {self.id[:12]} did not log {text!r} {occurrences} time(s) "
                    f"within {timeout:.0f} s:\n{log_tail(logs)}"
                )
            time.sleep(0.1)

    def wait_for_exit(self, timeout: float = START_TIMEOUT) -> int:
        return int(self.docker("wait", self.id, timeout=timeout).stdout.strip())


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    database: str

    def environment(self) -> dict[str, str]:
        return {
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_DB": self.database,
        }


async def connect(container: Container, credentials: Credentials) -> asyncpg.Connection:
    return await asyncpg.connect(
        host="127.0.0.1",
        port=container.host_port(),
        user=credentials.user,
        password=credentials.password,
        database=credentials.database,
        timeout=10,
    )


async def init_runs(container: Container, credentials: Credentials) -> list[str]:
    """The init scripts that ran, in the order they ran."""
    connection = await connect(container, credentials)
    try:
        rows = await connection.fetch("SELECT script FROM init_runs ORDER BY id")
    finally:
        await connection.close()
    return [row["script"] for row in rows]


INIT_SCRIPTS = ["01-schema.sql", "02-sourced.sh", "03-executed.sh", "04-compressed.sql.gz"]


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    """The docker CLI, or a skip when no engine answers; removes what it created."""
    executable = shutil.which("docker")
    if executable is None:
        pytest.skip("no docker CLI on PATH: install Docker to test the kit/postgres image")
    cli = Docker(executable, f"kit.test.postgres-image={secrets.token_hex(6)}")
    info = cli("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    if info.returncode != 0:
        pytest.skip(
            "no Docker engine answers (`docker info` failed: "
            f"{log_tail(info.stderr, 2).strip()}); start one to test the kit/postgres image"
        )
    try:
        yield cli
    finally:
        cli.remove_everything()


@pytest.fixture(scope="module")
def postgres_image(docker: Docker) -> str:
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        # built like CI and `make images` build it: from Debian packages, no registry
        built = subprocess.run(
            [str(IMAGE_CONTEXT.parent / "debian" / "build.sh"), BASE_IMAGE],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert built.returncode == 0, f"base/debian/build.sh failed:\n{built.stderr}"
    tag = f"kit/postgres:15-test-{secrets.token_hex(4)}"
    docker.build(IMAGE_CONTEXT, tag)
    return tag


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One script of each kind; each records itself in init_runs (created by the first)."""
    folder = tmp_path_factory.mktemp("docker-entrypoint-initdb.d")
    record = (
        'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" '
        "-c \"INSERT INTO init_runs (script) VALUES ('{name}')\"\n"
    )
    (folder / "01-schema.sql").write_text(
        "CREATE TABLE init_runs (id integer GENERATED ALWAYS AS IDENTITY, script text);\n"
        "INSERT INTO init_runs (script) VALUES ('01-schema.sql');\n"
    )
    (folder / "02-sourced.sh").write_text(record.format(name="02-sourced.sh"))
    executed = folder / "03-executed.sh"
    executed.write_text("#!/bin/sh\nset -e\n" + record.format(name="03-executed.sh"))
    executed.chmod(0o755)
    (folder / "04-compressed.sql.gz").write_bytes(
        gzip.compress(b"INSERT INTO init_runs (script) VALUES ('04-compressed.sql.gz');\n")
    )
    (folder / "README.txt").write_text("not a script: ignored\n")
    # read inside the container by the postgres user
    folder.chmod(0o755)
    return folder


def random_credentials() -> Credentials:
    return Credentials(APP_USER, secrets.token_urlsafe(12), APP_DATABASE)


@contextmanager
def app_postgres(
    docker: Docker, image: str, init_dir: Path, credentials: Credentials, *command: str
) -> Iterator[Container]:
    """A first start with the init scripts, waited for as testcontainers does (log)."""
    with docker.run(
        image,
        *command,
        env=credentials.environment(),
        options=[
            "-p",
            "127.0.0.1::5432",
            "-v",
            f"{init_dir}:/docker-entrypoint-initdb.d:ro",
        ],
    ) as container:
        container.wait_for_log(READY, occurrences=2)
        yield container


@pytest.fixture(scope="module")
def credentials() -> Credentials:
    return random_credentials()


@pytest.fixture(scope="module")
def postgres(
    docker: Docker, postgres_image: str, init_dir: Path, credentials: Credentials
) -> Iterator[Container]:
    """A running container, given server arguments the way `docker run IMAGE -c ...` does."""
    with app_postgres(
        docker, postgres_image, init_dir, credentials, "-c", "fsync=off"
    ) as container:
        yield container


async def test_init_scripts_ran_once_in_sorted_order(
    postgres: Container, credentials: Credentials
) -> None:
    assert await init_runs(postgres, credentials) == INIT_SCRIPTS
    assert "ignoring /docker-entrypoint-initdb.d/README.txt" in postgres.logs()


async def test_the_database_is_utf8_with_the_given_owner_and_server_arguments(
    postgres: Container, credentials: Credentials
) -> None:
    connection = await connect(postgres, credentials)
    try:
        row = await connection.fetchrow(
            "SELECT current_user AS user_name, current_database() AS database,"
            " current_setting('server_encoding') AS encoding,"
            " current_setting('lc_collate') AS collation,"
            " current_setting('fsync') AS fsync"
        )
    finally:
        await connection.close()
    assert row is not None
    assert dict(row) == {
        "user_name": credentials.user,
        "database": credentials.database,
        "encoding": "UTF8",
        "collation": "C.UTF-8",
        "fsync": "off",
    }


async def test_a_wrong_password_is_refused(postgres: Container, credentials: Credentials) -> None:
    wrong = Credentials(credentials.user, credentials.password + "-wrong", credentials.database)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await connect(postgres, wrong)


def test_the_temporary_server_listens_only_on_the_socket(postgres: Container) -> None:
    """Nothing outside reaches a half-initialised database (testcontainers relies on it)."""
    logs = postgres.logs()
    temporary, real = logs.split(READY)[:2]
    assert 'listening on Unix socket "/var/run/postgresql/.s.PGSQL.5432"' in temporary
    assert "listening on IPv4 address" not in temporary
    assert 'listening on IPv4 address "0.0.0.0", port 5432' in real


@pytest.mark.parametrize(
    "command",
    [
        # testcontainers-python 4.x PostgresContainer._connect, older then newer releases
        ["pg_isready", "-hlocalhost", "-p5432", f"-U{APP_USER}"],
        [
            "sh",
            "-c",
            f'PGPASSWORD="$POSTGRES_PASSWORD" psql --username {APP_USER} --dbname {APP_DATABASE}'
            " --host 127.0.0.1 -c 'select version();'",
        ],
    ],
    ids=["pg_isready", "psql-over-tcp"],
)
def test_readiness_checks_run_inside_the_container(postgres: Container, command: list[str]) -> None:
    result = postgres.exec(*command)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_a_restart_keeps_the_data_and_does_not_rerun_the_init_scripts(
    docker: Docker, postgres_image: str, init_dir: Path
) -> None:
    credentials = random_credentials()
    with app_postgres(docker, postgres_image, init_dir, credentials) as container:
        connection = await connect(container, credentials)
        try:
            await connection.execute("CREATE TABLE kept AS SELECT 42 AS answer")
        finally:
            await connection.close()

        docker("restart", container.id)
        # the restarted server is the only one that logs READY again
        container.wait_for_log(READY, occurrences=3)

        assert await init_runs(container, credentials) == INIT_SCRIPTS
        connection = await connect(container, credentials)
        try:
            assert await connection.fetchval("SELECT answer FROM kept") == 42
        finally:
            await connection.close()
        assert "appears to contain a database; Skipping initialization" in container.logs()


def test_without_a_password_the_container_exits_with_the_reason(
    docker: Docker, postgres_image: str
) -> None:
    with docker.run(postgres_image) as container:
        assert container.wait_for_exit() != 0
        assert MISSING_PASSWORD in container.logs()


def test_docker_stop_is_a_fast_shutdown(
    docker: Docker, postgres_image: str, init_dir: Path
) -> None:
    with app_postgres(docker, postgres_image, init_dir, random_credentials()) as container:
        started = time.monotonic()
        docker("stop", "-t", "30", container.id)
        # killed after the 30 s grace period, it would exit with 137, not 0
        assert container.inspect("{{.State.ExitCode}}") == "0"
        assert time.monotonic() - started < 10
        assert "received fast shutdown request" in container.logs()


async def test_runs_as_the_postgres_user(docker: Docker, postgres_image: str) -> None:
    credentials = random_credentials()
    with docker.run(
        postgres_image,
        env=credentials.environment(),
        options=["--user", "postgres", "-p", "127.0.0.1::5432"],
    ) as container:
        container.wait_for_log(READY, occurrences=2)
        connection = await connect(container, credentials)
        try:
            assert await connection.fetchval("SELECT current_user") == APP_USER
        finally:
            await connection.close()
