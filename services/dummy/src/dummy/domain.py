"""The dummy service's domain: an entity owned by a user, and the rules on its fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from servicekit.text import clean_text

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Entity:
    id: UUID
    owner_id: UUID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewEntity:
    owner_id: UUID
    name: str
    description: str
    request_id: UUID | None


@dataclass(frozen=True)
class EntityChanges:
    """Fields to change; None keeps the current value."""

    name: str | None
    description: str | None


@dataclass(frozen=True)
class PageCursor:
    """Where the next page starts: just after this (created_at, id)."""

    created_at: datetime
    id: UUID


@dataclass(frozen=True)
class Page:
    entities: list[Entity]
    next_cursor: PageCursor | None


def valid_name(value: str) -> str:
    """One line of visible text, 1 to 200 characters (servicekit.text's policy)."""
    return clean_text(value, field="name", max_length=NAME_MAX_LENGTH)


def valid_description(value: str) -> str:
    """Empty, or text of up to 2000 characters that may span lines (LF and TAB allowed)."""
    return clean_text(
        value,
        field="description",
        max_length=DESCRIPTION_MAX_LENGTH,
        required=False,
        multiline=True,
    )
