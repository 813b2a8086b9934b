"""A throwaway PostgreSQL server as a local process: started, stopped, killed and started
again on the same port and data (fault tests)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import asyncpg

from harness.errors import PostgresStartError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

from harness.owner import current_owner, process_group_alive
from harness.postgres.account import RunAs, as_whom
from harness.postgres.binaries import REMEDY, PostgresBinaries
from harness.postgres.cluster import (
    SUPERUSER,
    check_data_dir,
    default_cache_dir,
    empty_directory,
    init_cluster,
    make_data_dir,
    sync_cluster,
)
from harness.postgres.output import read_text, tail
from harness.postgres.reaper import (
    DIR_PREFIX,
    default_roots,
    default_tmp_root,
    read_postmaster_pid,
    reap_stale_servers,
    remove_sysv_segment,
)
from harness.postgres.settings import (
    DURABLE_SETTINGS,
    RELOADABLE_SETTINGS,
    THROWAWAY_SETTINGS,
    write_auto_conf,
)

__all__ = [
    "OLDEST_SUPPORTED_MAJOR",
    "PostgresEndpoint",
    "PostgresProcess",
    "PostgresServer",
    "run_postgres",
]


OLDEST_SUPPORTED_MAJOR = 13
_POLL_SECONDS = 0.005
_GROUP_EXIT_SECONDS = 10.0  # how long a crashed server's backends may take to be gone


class PostgresEndpoint(Protocol):
    """What the harness needs of any PostgreSQL server, local process or container."""

    @property
    def major(self) -> int: ...

    @property
    def log_location(self) -> str: ...

    def dsn(self, database: str = "postgres") -> str: ...

    def log_tail(self, lines: int = 30) -> str: ...


class PostgresProcess:
    """The postmaster of a throwaway server, launched from one command line, so that a
    fault test can stop or kill it and launch it again on the same port and data."""

    def __init__(
        self,
        command: Sequence[str],
        directory: Path,
        run_as: RunAs | None,
        stop_timeout: float,
    ) -> None:
        self.command = tuple(command)
        self.directory = directory
        self.run_as = run_as
        self.stop_timeout = stop_timeout
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._popen is not None, "launch() first"
        return self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def launch(self) -> None:
        with (self.directory / "postgres.log").open("ab") as log:
            self._popen = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                # Its own session: a Ctrl-C in the terminal must not stop the server before
                # the fixtures' teardown, which stops it in order; and a crash (kill) can
                # take the postmaster and its backends at once, as a process group.
                start_new_session=True,
                user=self.run_as.uid if self.run_as else None,
                group=self.run_as.gid if self.run_as else None,
                extra_groups=[] if self.run_as else None,
            )
        # Written before the server is known to work, so a run killed from here on is reaped.
        (self.directory / "server.pid").write_text(f"{self._popen.pid}\n")

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back, disconnect, exit), SIGKILL if that takes too long."""
        if self._popen is not None:
            _stop_server(self._popen, self.directory / "data", self.stop_timeout)

    def kill(self) -> None:
        """SIGKILL to the postmaster and every backend at once: a crash."""
        if not self.running:
            return
        assert self._popen is not None
        _kill_server(self._popen)

    def wait_until_ready(self, server: PostgresServer, timeout: float) -> None:
        """Return once the server accepts connections; raise :class:`_ServerExited` if
        it exits, ``TimeoutError`` if it does not get there within ``timeout``."""
        assert self._popen is not None, "launch() first"
        _wait_until_ready(server, self._popen, timeout)


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where to reach it, where its files are, and its process (which
    fault tests stop, kill and start again: :meth:`shut_down`, :meth:`crash`,
    :meth:`start_again`)."""

    host: str
    port: int
    user: str
    version: str
    directory: Path
    binaries: PostgresBinaries
    process: PostgresProcess = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        """The postmaster's pid (a new one after :meth:`start_again`)."""
        return self.process.pid

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def log_location(self) -> str:
        return str(self.log_path)

    @property
    def major(self) -> int:
        return self.binaries.major

    @property
    def address(self) -> str:
        """host:port of the server."""
        return f"{self.host}:{self.port}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def log_tail(self, lines: int = 30) -> str:
        return tail(read_text(self.log_path), lines)

    @property
    def running(self) -> bool:
        return self.process.running

    def shut_down(self) -> None:
        """Stop the server as an operator would (fast shutdown); returns once it is down."""
        self.process.stop()

    def crash(self) -> None:
        """Kill the postmaster and its backends at once (SIGKILL); returns once they are gone."""
        self.process.kill()

    def start_again(self, timeout: float = 30.0) -> None:
        """Start a stopped or killed server on the same port and data; returns once it
        accepts connections (after crash recovery, if it crashed)."""
        if self.running:
            return
        deadline = time.monotonic() + timeout
        while True:
            self.process.launch()
            try:
                self.process.wait_until_ready(self, max(0.5, deadline - time.monotonic()))
                return
            except _ServerExited as exited:
                log = self.log_tail(10)
                # Backends of a killed server can hold its shared memory a moment longer.
                if "still in use" in log and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise PostgresStartError(
                    f"postgres exited with status {exited.returncode} when started again on "
                    f"port {self.port}. Last lines of {self.log_path}:\n{log}"
                ) from None
            except TimeoutError:
                self.process.stop()
                raise PostgresStartError(
                    f"postgres did not accept connections on port {self.port} within "
                    f"{timeout:.0f} s of being started again. Last lines of {self.log_path}:\n"
                    f"{self.log_tail()}"
                ) from None


@contextlib.contextmanager
def run_postgres(
    binaries: PostgresBinaries,
    *,
    label: str = "",
    settings: Mapping[str, str] | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    tmp_root: Path | None = None,
    durable: bool = False,
    data_dir: Path | None = None,
) -> Iterator[PostgresServer]:
    """Start a server, yield it, stop it and delete every file it had but a ``data_dir``.

    ``label`` goes into the temporary directory's name (the xdist worker, say);
    ``settings`` are extra ``postgresql.conf`` settings over :data:`THROWAWAY_SETTINGS`
    (and :data:`DURABLE_SETTINGS` when ``durable``: fsync, synchronous_commit and
    full_page_writes on, and a new cluster synced to disk); the directory goes under
    ``tmp_root``, by default :func:`default_tmp_root`. ``data_dir``: the cluster is kept
    there rather than in the temporary directory (which links to it as ``data``): made
    when the directory is absent or empty, used as it is when it holds one (see
    :func:`check_data_dir` for what is refused).
    """
    if binaries.major < OLDEST_SUPPORTED_MAJOR:
        raise PostgresStartError(
            f"PostgreSQL {binaries.version} in {binaries.bindir} is older than "
            f"{OLDEST_SUPPORTED_MAJOR}, the oldest the harness supports. Remedy: {REMEDY}."
        )
    run_as = RunAs.when_root()
    kept_cluster = data_dir is not None and check_data_dir(data_dir, binaries, run_as)
    root = tmp_root or default_tmp_root()
    reap_stale_servers(sorted({root, *default_roots()}))
    with contextlib.ExitStack() as cleanup:
        directory = _make_owned_directory(root, label, run_as)
        cleanup.callback(shutil.rmtree, directory, ignore_errors=True)  # a link, not its target
        server_settings = {
            **THROWAWAY_SETTINGS,
            **(DURABLE_SETTINGS if durable else {}),
            **(settings or {}),
        }
        cluster = directory / "data"
        if data_dir is not None:
            kept = make_data_dir(data_dir, run_as, new_cluster=not kept_cluster)
            cluster.symlink_to(kept, target_is_directory=True)
        if not kept_cluster:
            cache = (cache_dir or default_cache_dir()) if use_cache else None
            try:
                init_cluster(binaries, cluster.resolve(), run_as, cache)
                if durable:
                    sync_cluster(binaries, cluster.resolve(), run_as)
            except BaseException:
                if data_dir is not None:  # it was empty: leave it so, not half a cluster
                    empty_directory(cluster.resolve())
                raise
        yield _start(
            binaries, directory, run_as, server_settings, start_timeout, stop_timeout, cleanup
        )


def _make_owned_directory(root: Path, label: str, run_as: RunAs | None) -> Path:
    safe_label = re.sub(r"[^A-Za-z0-9]", "", label)
    directory = Path(
        tempfile.mkdtemp(
            prefix=f"{DIR_PREFIX}{current_owner()}-{safe_label + '-' if safe_label else ''}",
            dir=root,
        )
    )
    if run_as:
        os.chown(directory, run_as.uid, run_as.gid)
    return directory


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(
    binaries: PostgresBinaries,
    directory: Path,
    run_as: RunAs | None,
    settings: Mapping[str, str],
    timeout: float,
    stop_timeout: float,
    cleanup: contextlib.ExitStack,
) -> PostgresServer:
    write_auto_conf(
        directory / "data",
        {name: value for name, value in settings.items() if name in RELOADABLE_SETTINGS},
        run_as,
    )
    attempts = 3  # a free port can be taken between probing it and postgres binding it
    for attempt in range(1, attempts + 1):
        port = _free_port()
        command = [
            str(binaries.program("postgres")),
            f"-D{directory / 'data'}",
            *(
                f"-c{name}={value}"
                for name, value in settings.items()
                if name not in RELOADABLE_SETTINGS
            ),
            "-clisten_addresses=127.0.0.1",
            f"-cport={port}",
            f"-cunix_socket_directories={directory}",
        ]
        log_path = directory / "postgres.log"
        process = PostgresProcess(command, directory, run_as, stop_timeout)
        process.launch()
        server = PostgresServer(
            host="127.0.0.1",
            port=port,
            user=SUPERUSER,
            version=binaries.version,
            directory=directory,
            binaries=binaries,
            process=process,
        )
        try:
            process.wait_until_ready(server, timeout)
        except _ServerExited as exited:
            log_text = read_text(log_path)
            if "could not bind" in log_text and attempt < attempts:
                log_path.rename(log_path.with_suffix(f".attempt-{attempt}.log"))
                continue
            raise PostgresStartError(
                f"postgres exited with status {exited.returncode} before accepting "
                f"connections{as_whom(run_as)}. Last lines of {log_path}:\n{tail(log_text)}"
            ) from None
        except TimeoutError:
            process.stop()
            raise PostgresStartError(
                f"postgres did not accept connections on port {port} within {timeout:.0f} s. "
                f"Last lines of {log_path}:\n{server.log_tail()}\n"
                "Remedy: a slow machine may need a longer start timeout; the log says why else."
            ) from None
        except BaseException:
            process.stop()
            raise
        cleanup.callback(process.stop)  # the process of the moment: fault tests relaunch it
        return server
    raise AssertionError("unreachable: the last attempt raises")


class _ServerExited(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(returncode)
        self.returncode = returncode


def _wait_until_ready(
    server: PostgresServer, process: subprocess.Popen[bytes], timeout: float
) -> None:
    async def connect_until_accepted() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if process.poll() is not None:
                raise _ServerExited(process.returncode)
            try:
                connection = await asyncpg.connect(
                    server.dsn(), ssl=False, timeout=max(0.5, deadline - loop.time())
                )
            except (OSError, TimeoutError, asyncpg.CannotConnectNowError):
                if loop.time() >= deadline:
                    raise TimeoutError from None
                # Poll: nothing signals readiness, and refused connections fail instantly.
                await asyncio.sleep(_POLL_SECONDS)
                continue
            await connection.close()
            return

    # Its own thread: the caller may be inside a running event loop (or pytest-asyncio's).
    from harness._loop import BackgroundLoop

    with BackgroundLoop("harness-postgres-start") as loop:
        loop.run(connect_until_accepted())


def _stop_server(process: subprocess.Popen[bytes], data_dir: Path, timeout: float) -> None:
    """Fast shutdown (SIGINT: roll back, disconnect, exit), SIGKILL if that takes too long."""
    if process.poll() is not None:
        return
    pid_file = read_postmaster_pid(data_dir)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_server(process)
        # A killed postmaster cannot remove its shared memory segment itself.
        if pid_file is not None:
            remove_sysv_segment(pid_file.shm_key, pid_file.shm_id)


def _kill_server(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the postmaster and its backends; returns once they are all gone. The
    backends die a moment after the postmaster and hold its shared memory until then: a
    server started on the same data before that refuses to run ("pre-existing shared
    memory block is still in use")."""
    # Its own process group (start_new_session): only this server's processes are in it.
    if os.getpgid(process.pid) != process.pid:
        process.kill()
        process.wait()
        return
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + _GROUP_EXIT_SECONDS
    while process_group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
