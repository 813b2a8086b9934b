"""A server's cluster: initialised once per version and copied from a cache, or kept in a
given data directory (checked before anything in it is touched)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

from harness.errors import PostgresStartError
from harness.owner import process_alive
from harness.postgres.account import RunAs, as_whom, chown_tree, run_program
from harness.postgres.binaries import PostgresBinaries
from harness.postgres.output import tail

__all__ = [
    "INITDB_OPTIONS",
    "SUPERUSER",
    "check_data_dir",
    "default_cache_dir",
    "empty_directory",
    "init_cluster",
    "initdb_options",
    "make_data_dir",
    "sync_cluster",
]


SUPERUSER = "postgres"

INITDB_OPTIONS = (
    f"--username={SUPERUSER}",
    "--auth=trust",
    "--encoding=UTF8",
    "--no-sync",
    "--no-instructions",
)


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
            chown_tree(data_dir, run_as)
        data_dir.chmod(0o700)
        return
    command = [str(binaries.program("initdb")), f"--pgdata={data_dir}", *initdb_options(binaries)]
    try:
        run_program(command, run_as, timeout=120, cwd=data_dir.parent)
    except (OSError, subprocess.SubprocessError) as error:
        output = getattr(error, "output", "") or ""
        raise PostgresStartError(
            f"initdb failed{as_whom(run_as)}: {error}\n{tail(output)}\n"
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
        run_program(command, run_as, timeout=120, cwd=data_dir)
    except (OSError, subprocess.SubprocessError) as error:
        output = getattr(error, "output", "") or ""
        raise PostgresStartError(
            f"could not sync the new cluster in {data_dir} to disk{as_whom(run_as)}: "
            f"{error}\n{tail(output)}"
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
            if not process_alive(int(stale.name.rsplit("-", 1)[1])):
                shutil.rmtree(stale, ignore_errors=True)
        shutil.copytree(data_dir, staging, symlinks=True)
        staging.rename(cached)  # fails if a concurrent run published first: theirs is as good
    except (OSError, ValueError):
        shutil.rmtree(staging, ignore_errors=True)


def make_data_dir(data_dir: Path, run_as: RunAs | None, *, new_cluster: bool) -> Path:
    """The kept cluster's directory, absolute, made when absent; for a new cluster owned by
    whoever runs postgres (the parents stay the caller's)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if new_cluster and run_as:
        os.chown(data_dir, run_as.uid, run_as.gid)
    return data_dir


def empty_directory(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
