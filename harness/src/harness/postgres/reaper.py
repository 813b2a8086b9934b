"""Where servers' directories go, and reaping the ones whose owning run died.

A directory is named ``harness-pg-<owner>-...`` (:mod:`harness.owner`); when that process
is gone, its server is killed, its shared memory freed and the directory deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

from harness.owner import OWNER_PATTERN, owner_gone, process_alive

__all__ = [
    "DIR_PREFIX",
    "RAM_DISK",
    "RAM_DISK_MIN_FREE",
    "PostmasterPid",
    "default_roots",
    "default_tmp_root",
    "read_postmaster_pid",
    "reap_stale_servers",
    "remove_sysv_segment",
]


DIR_PREFIX = "harness-pg-"
RAM_DISK = Path("/dev/shm")  # noqa: S108 - only mkdtemp (private, unique) is used in it
# Room for a few servers' clusters (~40 MB each) and their capped WAL; Docker's default
# 64 MB /dev/shm is too small and falls back to the temp dir.
RAM_DISK_MIN_FREE = 1 << 30

_OWNER_NAME = re.compile(rf"^{re.escape(DIR_PREFIX)}(?P<owner>{OWNER_PATTERN})-")
_POLL_SECONDS = 0.005


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


def default_roots() -> list[Path]:
    return sorted({default_tmp_root(), RAM_DISK, Path(tempfile.gettempdir())})


def reap_stale_servers(roots: Sequence[Path] | None = None) -> list[Path]:
    """Kill the servers of runs that died without stopping them, and delete their files.

    A directory is stale when the process named in it (pid and start time, so a reused
    pid does not keep it alive) is gone. ``roots`` defaults to every place
    :func:`default_tmp_root` may choose. Returns the directories reaped.
    """
    if roots is None:
        roots = default_roots()
    candidates = [directory for root in roots for directory in root.glob(f"{DIR_PREFIX}*")]
    reaped: list[Path] = []
    for directory in candidates:
        owner = _OWNER_NAME.match(directory.name)
        if owner is None or not owner_gone(owner["owner"]):
            continue
        _kill_leftover_server(directory)
        shutil.rmtree(directory, ignore_errors=True)
        reaped.append(directory)
    return reaped


def _kill_leftover_server(directory: Path) -> None:
    data_dir = directory / "data"
    pid_file = read_postmaster_pid(data_dir)
    pids = {pid_file.pid} if pid_file else set()
    with contextlib.suppress(OSError, ValueError):
        pids.add(int((directory / "server.pid").read_text()))
    for pid in pids:
        if process_alive(pid) and _runs_in(pid, data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, timeout=5.0)
    # However the postmaster died, nobody else will remove its segment.
    if pid_file is not None and not process_alive(pid_file.pid):
        remove_sysv_segment(pid_file.shm_key, pid_file.shm_id)


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
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)


@dataclass(frozen=True)
class PostmasterPid:
    pid: int
    shm_key: int
    shm_id: int


def read_postmaster_pid(data_dir: Path) -> PostmasterPid | None:
    """The pid and shared memory ids that postgres writes to ``postmaster.pid``."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        key, shm_id = lines[6].split()
        return PostmasterPid(int(lines[0]), int(key), int(shm_id))
    except (OSError, IndexError, ValueError):
        return None


def remove_sysv_segment(key: int, shm_id: int) -> None:
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
