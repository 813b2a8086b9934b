"""The docker backend's Postgres: one container per session, which fault tests stop, kill
and start again inside the running container (same data, same port)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from harness._loop import BackgroundLoop
from harness.backends.containers import (
    START_TIMEOUT,
    container_status,
    labels,
    publish_on_loopback,
    published_port,
)
from harness.errors import DockerBackendError
from harness.postgres import alter_system

__all__ = [
    "POSTGRES_PASSWORD",
    "DockerPostgres",
]


POSTGRES_PASSWORD = "harness"  # noqa: S105 - a throwaway server on loopback, for tests only

# The container's first process: it runs the image's entrypoint (initdb on the first start,
# then postgres) as a process group of its own, and starts it again after the harness
# stopped or killed it (the "held" file says so) instead of letting the container exit.
# Why not docker stop / kill / start: the data lives on a tmpfs, which a stopped container
# loses, and the published port would move; this way a fault is what it is on the process
# backend: the server's processes stop or die, the data and the address stay.
_POSTGRES_SUPERVISOR = """
trap 'kill -INT "$pid" 2>/dev/null; wait "$pid"; exit 0' INT TERM
while :; do
  setsid docker-entrypoint.sh "$@" &
  pid=$!
  echo "$pid" > /tmp/harness-postgres.pid
  wait "$pid"
  status=$?
  [ -e /tmp/harness-postgres.held ] || exit "$status"
  while [ -e /tmp/harness-postgres.held ]; do sleep 0.05; done
done
"""
# Hold the server (it is not started again), signal its process group, wait until the
# postmaster is gone (SIGKILL after ~10 s of a shutdown that does not end).
_POSTGRES_SIGNAL = """
touch /tmp/harness-postgres.held
pid=$(cat /tmp/harness-postgres.pid)
kill -"$1" -- -"$pid" || exit 1
tries=0
while kill -0 "$pid" 2>/dev/null; do
  tries=$((tries + 1))
  [ "$tries" -eq 200 ] && kill -KILL -- -"$pid"
  sleep 0.05
done
"""


class DockerPostgres:
    """The session's Postgres container; a :class:`~harness.postgres.PostgresEndpoint`,
    which fault tests stop, kill and start again (:meth:`shut_down`, :meth:`crash`,
    :meth:`start_again`) inside its running container."""

    def __init__(self, image: str, network_alias: str = "postgres") -> None:
        self.alias = network_alias
        self._container = (
            DockerContainer(image)
            .with_env("POSTGRES_PASSWORD", POSTGRES_PASSWORD)
            .with_env("POSTGRES_USER", "postgres")
            # synchronous_commit is set in postgresql.auto.conf once it runs (see start),
            # where a test can change it (PostgresControl.durable); the command line
            # would outrank that.
            .with_command("postgres -c fsync=off -c full_page_writes=off -c max_connections=200")
            .with_tmpfs_mount("/var/lib/postgresql/data")
            .with_kwargs(
                labels=labels(),
                entrypoint=["bash", "-c", _POSTGRES_SUPERVISOR, "harness-postgres"],
            )
        )
        publish_on_loopback(self._container, 5432)
        self._port = 0
        self._major = 0
        self._held = False  # stopped or killed by a fault test
        # asyncpg from synchronous code that may run inside pytest-asyncio's loop
        self._loop = BackgroundLoop("harness-docker-postgres").__enter__()

    @property
    def major(self) -> int:
        return self._major

    @property
    def log_location(self) -> str:
        return f"container {self._container.get_wrapped_container().name}"

    @property
    def address(self) -> str:
        """host:port of the server from this machine (it moves when a stack's network is
        joined)."""
        return f"127.0.0.1:{self._port}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{POSTGRES_PASSWORD}@127.0.0.1:{self._port}/{database}"

    def service_dsn(self, database: str, via: str | None = None) -> str:
        """The DSN services use: over the stack's network, or at ``via`` (host:port of a
        fault link in front of the server)."""
        address = via or f"{self.alias}:5432"
        return f"postgresql://postgres:{POSTGRES_PASSWORD}@{address}/{database}"

    def log_tail(self, lines: int = 30) -> str:
        out, err = self._container.get_logs()
        return "\n".join((out + err).decode(errors="replace").splitlines()[-lines:])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self._container.start()
        self._port = published_port(self._container, 5432)
        self._major = self._loop.run(self._wait_until_ready(within=timeout))
        self._loop.run(alter_system(self.dsn(), "synchronous_commit", "off"))

    async def _wait_until_ready(self, *, within: float) -> int:
        # The image's first server listens on its socket only; a TCP connection that
        # succeeds is the real server (the way testcontainers checks it, too).
        deadline = time.monotonic() + within
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if container_status(self._container) not in ("created", "running"):
                break
            try:
                connection = await asyncpg.connect(self.dsn(), timeout=2)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                last = error
                await _pause()
                continue
            try:
                version = await connection.fetchval("SHOW server_version_num")
            finally:
                await connection.close()
            return int(version) // 10000
        raise DockerBackendError(
            f"the Postgres container did not accept connections within {within}s "
            f"(last error: {last}).\nLast log lines:\n{self.log_tail()}"
        )

    def connect(self, network: Network) -> None:
        """Join a stack's network. Docker then re-publishes the port (a new random host
        port, a new proxy): connections through the old one are cut."""
        network.connect(self._container.get_container_id(), [self.alias])
        self._port = published_port(self._container, 5432)
        self._loop.run(self._wait_until_ready(within=START_TIMEOUT))

    @property
    def running(self) -> bool:
        """Whether the server runs, as far as faults go: asked between every two tests, so
        it asks Docker nothing (a container that died on its own fails the clean-up that
        follows, with the database's error)."""
        return not self._held

    def shut_down(self) -> None:
        """Stop the server as an operator would (fast shutdown); returns once it is down."""
        self._signal_server("INT")

    def crash(self) -> None:
        """Kill the postmaster and its backends at once (SIGKILL); returns once they are gone."""
        self._signal_server("KILL")

    def start_again(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server again in its container, same data and port; returns once it
        accepts connections (after crash recovery, if it crashed)."""
        if not self._held:
            return
        self._exec("rm -f /tmp/harness-postgres.held")
        self._held = False
        self._loop.run(self._wait_until_ready(within=timeout))

    def _signal_server(self, signal_name: str) -> None:
        if self._held:
            return
        self._exec(_POSTGRES_SIGNAL, signal_name)
        self._held = True

    def _exec(self, script: str, *arguments: str) -> None:
        result = self._container.get_wrapped_container().exec_run(
            ["bash", "-c", script, "harness-postgres", *arguments]
        )
        if result.exit_code != 0:
            output = (
                result.output.decode(errors="replace") if isinstance(result.output, bytes) else ""
            )
            raise DockerBackendError(
                f"`{script.strip().splitlines()[0]} ...` in the Postgres container exited "
                f"with {result.exit_code}: {output.strip()}"
            )

    def stop(self) -> None:
        self._container.stop()
        self._loop.close()


async def _pause() -> None:
    # Between two connection attempts (each itself waits up to its timeout): the
    # server is still starting, and retrying at once would only spin.
    await asyncio.sleep(0.05)
