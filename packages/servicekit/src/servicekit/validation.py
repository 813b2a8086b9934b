"""Parsing of request fields into domain values; every failure names its field."""

from __future__ import annotations

from uuid import UUID

from servicekit.errors import InvalidArgument


def parse_uuid(field: str, value: str) -> UUID:
    """A required UUID field: missing or malformed is INVALID_ARGUMENT."""
    if not value:
        raise InvalidArgument(field, "is required")
    try:
        return UUID(value)
    except ValueError:
        raise InvalidArgument(field, f"must be a UUID, got {value[:64]!r}") from None


def bounded_text(field: str, value: str, *, max_length: int, required: bool) -> str:
    """Text trimmed of surrounding white space, within ``max_length`` characters."""
    text = value.strip()
    if "\x00" in text:  # PostgreSQL text cannot hold NUL: refuse it here, by name
        raise InvalidArgument(field, "must not contain NUL characters")
    if required and not text:
        raise InvalidArgument(field, "is required")
    if len(text) > max_length:
        raise InvalidArgument(field, f"must be at most {max_length} characters, got {len(text)}")
    return text
