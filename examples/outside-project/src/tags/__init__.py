"""The tags service: the one spelling of a tag (``normalize``), and how often each is used."""

from __future__ import annotations

from collections.abc import Iterable

from servicekit.errors import InvalidArgument

__all__ = ["normalize"]


def normalize(tags: Iterable[str]) -> list[str]:
    """Trimmed, lower-cased, each once, in the order first given; a blank tag is refused."""
    normalized: list[str] = []
    for index, tag in enumerate(tags):
        spelled = tag.strip().lower()
        if not spelled:
            raise InvalidArgument(f"tags[{index}]", "must not be blank")
        if spelled not in normalized:
            normalized.append(spelled)
    return normalized
