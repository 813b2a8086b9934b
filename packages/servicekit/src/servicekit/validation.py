"""Parsing of request fields into domain values; every failure names its field.

Free text has its own policy: :mod:`servicekit.text`.
"""

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
