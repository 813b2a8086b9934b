"""Which run owns a leftover: the owner string ``<pid>-<process start time>``.

The harness names what may outlive a killed run by the process that made it: a
server's directory (``harness-pg-<owner>-...``) and every container and network (the
``harness.owner`` label). A later run reaps what belongs to an owner that is gone. The
start time (in clock ticks since boot, from ``/proc``) is there so that a reused pid
does not keep a dead run's leftovers alive.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = [
    "OWNER_PATTERN",
    "current_owner",
    "owner_gone",
    "process_alive",
    "process_group_alive",
    "process_start_time",
]

OWNER_PATTERN = r"\d+-\d+"
"""A regular expression matching an owner string, for names that embed one."""


def current_owner() -> str:
    """This process's owner string."""
    pid = os.getpid()
    return f"{pid}-{process_start_time(pid) or 0}"


def owner_gone(owner: str) -> bool:
    """Whether the process named by ``owner`` is gone (its pid does not run, or runs
    another process). A string that names no pid is nobody's: not gone."""
    pid, _, start = owner.partition("-")
    return pid.isdigit() and not process_alive(int(pid), int(start) if start.isdigit() else None)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name), or None without it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None without /proc)."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None  # field 22, starttime, in clock ticks


def process_alive(pid: int, start_time: int | None = None) -> bool:
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


def process_group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies do not count: they hold
    no memory any more). Without /proc, whether its leader exists."""
    if not sys.platform.startswith("linux"):
        return process_alive(pgid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields is not None and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True  # field 5, pgrp
    return False
