"""The user service's domain: a user, and the rules on its fields.

Every text field first follows servicekit's text policy (:mod:`servicekit.text`:
no control, bidirectional, zero-width or other invisible formatting characters,
trimmed, NFC), then its own rules.

E-mail addresses are stored normalized (trimmed, NFC, domain lower-cased, the local
part kept as given) and compared case-insensitively: "Ann@Example.COM" and
"ann@example.com" are one user. The rules are deliberately loose (RFC 5321 allows
far more than any form should): at most 254 characters, no white space, exactly one
"@" with a non-empty local part, and a domain of at least two non-empty
dot-separated labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID

from servicekit.errors import InvalidArgument
from servicekit.text import clean_text

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


def normalize_email(value: str) -> str:
    """The stored form of an e-mail address; INVALID_ARGUMENT (field ``email``) if malformed."""
    email = clean_text(value, field="email", max_length=EMAIL_MAX_LENGTH)
    if any(c.isspace() for c in email):
        raise InvalidArgument("email", "must not contain white space")
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
    """A display name: empty, or one line of visible text of up to 200 characters."""
    return clean_text(value, field="name", max_length=NAME_MAX_LENGTH, required=False)


def valid_avatar_url(value: str) -> str:
    """Empty, or an absolute http(s) URL with a host, at most 2048 characters."""
    url = clean_text(value, field="avatar_url", max_length=AVATAR_URL_MAX_LENGTH, required=False)
    if not url:
        return url
    if any(c.isspace() for c in url):
        raise InvalidArgument("avatar_url", "must not contain white space")
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
