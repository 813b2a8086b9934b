"""Who runs initdb and postgres: PostgreSQL refuses root, so as root the account ``nobody``."""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import PostgresStartError

if TYPE_CHECKING:
    from collections.abc import Sequence


__all__ = [
    "RunAs",
    "as_whom",
    "chown_tree",
    "run_program",
]


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


def as_whom(run_as: RunAs | None) -> str:
    return f" (run as {run_as.user})" if run_as else ""


def run_program(
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


def chown_tree(root: Path, run_as: RunAs) -> None:
    os.chown(root, run_as.uid, run_as.gid)
    for directory, subdirectories, files in os.walk(root):
        for name in (*subdirectories, *files):
            os.chown(os.path.join(directory, name), run_as.uid, run_as.gid, follow_symlinks=False)
