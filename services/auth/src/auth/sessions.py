"""Session tokens and the session policy: pure functions, the clock passed in as ``now``.

A token is ``"<id>.<secret>"``. The id (24 lower-case base32 characters) is the
public key of the stored session; the secret (43 URL-safe base64 characters, 256
random bits) is returned once, when the session is created, and only its SHA-256
digest is stored. Digests are compared in constant time.

A session lives :data:`SESSION_LIFETIME` (7 days). Validated in the last half of its
lifetime it is refreshed: its expiry slides to ``now + SESSION_LIFETIME``. Validated
on or after its expiry it is expired and must be deleted.

The secret is verified before anything that leads to a write: :func:`decide` raises
:class:`~auth.errors.InvalidSessionToken` for a wrong secret before it looks at the
expiry, so a wrong secret never refreshes, extends or deletes a session. The caller's
sequence for ValidateSession::

    token = parse_token(request.token)         # InvalidArgument / InvalidSessionToken
    stored = await repository.get(token.id)    # None -> raise InvalidSessionToken()
    match decide(stored, token.secret, now):   # wrong secret -> InvalidSessionToken, no write
        case Valid():
            ...                                # no write; refreshed = False
        case Refresh(new_expire_time):
            await repository.set_expire_time(stored.id, new_expire_time)
        case Expired():
            await repository.delete(stored.id)
            raise InvalidSessionToken()

and for DeleteSession (logout) the same first three lines, then delete on ``Valid`` or
``Refresh`` and raise InvalidSessionToken on ``Expired``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from auth.errors import InvalidSessionToken
from servicekit.errors import InvalidArgument

if TYPE_CHECKING:
    from uuid import UUID

SESSION_LIFETIME = timedelta(days=7)
"""How long a session lives after it is created or refreshed."""

REFRESH_WHEN_REMAINING = SESSION_LIFETIME / 2
"""A session validated with this much lifetime left, or less, is refreshed."""

ID_LENGTH = 24
"""Characters of a session id: 15 random bytes in lower-case base32 (120 bits)."""

SECRET_LENGTH = 43
"""Characters of a session secret: 32 random bytes in unpadded URL-safe base64 (256 bits)."""

TOKEN_LENGTH = ID_LENGTH + 1 + SECRET_LENGTH

_ID_PATTERN = re.compile(rf"[a-z2-7]{{{ID_LENGTH}}}")
_SECRET_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{{SECRET_LENGTH}}}")


class SessionToken(NamedTuple):
    """A parsed token: the session id and the secret (which ``repr`` never shows)."""

    id: str
    secret: str

    def __repr__(self) -> str:
        return f"SessionToken(id={self.id!r}, secret=<redacted>)"


@dataclass(frozen=True)
class NewSession:
    """A session just minted: store ``id``, ``secret_hash`` and ``expire_time``; give
    ``token`` to the caller, once."""

    id: str
    secret_hash: bytes = field(repr=False)
    expire_time: datetime
    token: str = field(repr=False)


@dataclass(frozen=True)
class StoredSession:
    """A session as the repository keeps it."""

    id: str
    user_id: UUID
    secret_hash: bytes = field(repr=False)
    expire_time: datetime


@dataclass(frozen=True)
class Valid:
    """The session is valid and stays as it is: nothing to write."""


@dataclass(frozen=True)
class Refresh:
    """The session is valid and in the last half of its lifetime: write the new expiry."""

    new_expire_time: datetime


@dataclass(frozen=True)
class Expired:
    """The session has expired: delete it and answer InvalidSessionToken."""


Decision = Valid | Refresh | Expired


def new_session(now: datetime) -> NewSession:
    """Mints a random id and secret; the session expires ``SESSION_LIFETIME`` from ``now``."""
    _require_aware(now)
    session_id = base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()
    secret = secrets.token_urlsafe(32)
    return NewSession(
        id=session_id,
        secret_hash=hash_secret(secret),
        expire_time=now + SESSION_LIFETIME,
        token=f"{session_id}.{secret}",
    )


def hash_secret(secret: str) -> bytes:
    """The SHA-256 digest of a secret: the only form of it that is stored."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def parse_token(token: str) -> SessionToken:
    """Splits ``"<id>.<secret>"`` and checks the shape of both parts.

    Raises InvalidArgument (field ``token``) when it is empty, and InvalidSessionToken
    when it is malformed: oversized, without exactly one dot, with a part of the wrong
    length or with a character outside its alphabet.
    """
    if not token:
        raise InvalidArgument("token", "is required")
    # Checked first so that no work is done on an oversized input.
    if len(token) != TOKEN_LENGTH:
        raise InvalidSessionToken()
    session_id, dot, secret = token.partition(".")
    if not dot or not _ID_PATTERN.fullmatch(session_id) or not _SECRET_PATTERN.fullmatch(secret):
        raise InvalidSessionToken()
    return SessionToken(session_id, secret)


def verify_secret(stored: StoredSession, secret: str) -> None:
    """Raises InvalidSessionToken unless ``secret`` is the stored session's (constant time)."""
    if not hmac.compare_digest(stored.secret_hash, hash_secret(secret)):
        raise InvalidSessionToken()


def decide(stored: StoredSession, secret: str, now: datetime) -> Decision:
    """What a validation of ``stored`` with ``secret`` at ``now`` must do.

    The secret is verified first: a wrong one raises InvalidSessionToken and no
    decision (hence no write) is made. Then, at or after the expiry: Expired; with
    half the lifetime or less left: Refresh to ``now + SESSION_LIFETIME``; else Valid.
    """
    _require_aware(now)
    verify_secret(stored, secret)
    remaining = stored.expire_time - now
    if remaining <= timedelta(0):
        return Expired()
    if remaining <= REFRESH_WHEN_REMAINING:
        return Refresh(new_expire_time=now + SESSION_LIFETIME)
    return Valid()


def _require_aware(now: datetime) -> None:
    # A naive datetime would silently mean "local time" and break every comparison
    # with the stored (UTC) expiry: that is a bug in the caller, said at once.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
