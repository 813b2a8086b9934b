"""Reading a migrations folder: naming rules and order (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from servicekit.migrations import MigrationError, load_migrations


def folder_with(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / name).write_text(f"-- {name}\n")
    return tmp_path


def test_migrations_are_ordered_by_version(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path, "0002_second.sql", "0010_tenth.sql", "0001_first.sql", "README.md"
    )
    assert [(m.version, m.name) for m in load_migrations(folder)] == [
        (1, "first"),
        (2, "second"),
        (10, "tenth"),
    ]


@pytest.mark.parametrize(
    "bad_name",
    ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "0001_.sql", "abcd_x.sql"],
    ids=["version too short", "dash", "upper case", "no description", "no version"],
)
def test_badly_named_sql_files_are_refused(tmp_path: Path, bad_name: str) -> None:
    with pytest.raises(MigrationError, match=r"NNNN_description\.sql"):
        load_migrations(folder_with(tmp_path, "0001_ok.sql", bad_name))


def test_two_files_with_one_version_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=r"share the version\(s\) \[1\]"):
        load_migrations(folder_with(tmp_path, "0001_a.sql", "0001_b.sql"))


def test_checksum_follows_the_content(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a ();")
    before = load_migrations(tmp_path)[0].checksum
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x int);")
    assert load_migrations(tmp_path)[0].checksum != before
