"""The user service's domain: a user, and the rules on its fields.

E-mail addresses are stored normalized (trimmed, domain lower-cased, the local part
kept as given) and compared case-insensitively: "Ann@Example.COM" and
"ann@example.com" are one user. The rules are deliberately loose (RFC 5321 allows
far more than any form should): at most 254 characters, no white space or control
characters, exactly one "@" with a non-empty local part, and a domain of at least
two non-empty dot-separated labels.

Text fields reject control characters: PostgreSQL cannot store NUL, and a display
name or URL has no use for the others.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID

from servicekit.errors import InvalidArgument
from servicekit.validation import bounded_text

EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path, less the angle brackets
NAME_MAX_LENGTH = 200
AVATAR_URL_MAX_LENGTH = 2048
AVATAR_URL_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True)
class User:
    id: UUID
    email: str  # normalized, see normalize_email
    name: str
    avatar_url: str  # absolute http(s) URL, or empty
    created_at: datetime


@dataclass(frozen=True)
class NewUser:
    email: str
    name: str
    avatar_url: str


def email_key(email: str) -> str:
    """What two addresses share when they are the same user's (case-insensitive)."""
    return email.lower()


def _has_control_character(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def normalize_email(value: str) -> str:
    """The stored form of an e-mail address; INVALID_ARGUMENT (field ``email``) if malformed."""
    email = value.strip()
    if not email:
        raise InvalidArgument("email", "is required")
    if len(email) > EMAIL_MAX_LENGTH:
        raise InvalidArgument(
            "email", f"must be at most {EMAIL_MAX_LENGTH} characters, got {len(email)}"
        )
    if any(c.isspace() for c in email) or _has_control_character(email):
        raise InvalidArgument("email", "must not contain white space or control characters")
    if email.count("@") != 1:
        raise InvalidArgument("email", "must be of the form local@domain with exactly one '@'")
    local, domain = email.split("@")
    if not local:
        raise InvalidArgument("email", "must have a non-empty part before the '@'")
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        raise InvalidArgument("email", "must have a domain like example.com after the '@'")
    return f"{local}@{domain.lower()}"


def valid_name(value: str) -> str:
    """A display name: trimmed, 0 to 200 characters, no control characters."""
    name = bounded_text("name", value, max_length=NAME_MAX_LENGTH, required=False)
    if _has_control_character(name):
        raise InvalidArgument("name", "must not contain control characters")
    return name


def valid_avatar_url(value: str) -> str:
    """Empty, or an absolute http(s) URL with a host, at most 2048 characters."""
    url = bounded_text("avatar_url", value, max_length=AVATAR_URL_MAX_LENGTH, required=False)
    if not url:
        return url
    if any(c.isspace() for c in url) or _has_control_character(url):
        raise InvalidArgument("avatar_url", "must not contain white space or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError:
        raise InvalidArgument("avatar_url", "must be an absolute http(s) URL") from None
    if parts.scheme not in AVATAR_URL_SCHEMES:
        raise InvalidArgument("avatar_url", "must be an absolute URL with scheme http or https")
    if not parts.hostname:
        raise InvalidArgument("avatar_url", "must be an absolute http(s) URL with a host")
    return url
