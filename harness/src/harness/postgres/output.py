"""Reading a server's files for error messages: text that may not be there, and its tail."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "read_text",
    "tail",
]


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(no output)"
