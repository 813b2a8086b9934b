"""Errors of the auth service.

Each class mixes the service's base, :class:`AuthError`, with one kind from
:mod:`servicekit.errors`; the kind alone decides the gRPC status (servicekit maps it
in one place), so nothing here knows about gRPC.

    AuthError
    ├── InvalidSessionToken         (Unauthenticated)     malformed, unknown, expired or
    │                                                     wrong secret; never says which
    ├── StateMismatch               (InvalidArgument)     the callback's state is not the
    │                                                     one kept since the login started
    ├── ProviderNotConfigured       (FailedPrecondition)  no client id/secret for this
    │                                                     provider; names the env to set
    ├── ProviderRejected            (PermissionDenied)    code refused, identity did not
    │                                                     verify, no verified e-mail,
    │                                                     invalid answer
    ├── ProviderUnavailable         (Unavailable)         network error, timeout, 5xx,
    │                                                     rate limited
    ├── AccountLinkedToAnotherUser  (AlreadyExists)       the provider account belongs
    │                                                     to another user
    ├── OauthAccountNotFound        (NotFound)            the provider account is not linked
    └── StorageUnavailable          (Unavailable)         also servicekit's StorageUnavailable

A missing or malformed request field is servicekit's ``InvalidArgument`` (which names
the field), as in every service.

Messages go to the caller as they are: they name the problem and never carry a secret,
a token, or which part of a token or identity failed to verify. What an operator needs
beyond that travels as the exception's ``__cause__`` and, for :class:`ProviderRejected`,
its ``detail`` attribute, both for server logs only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servicekit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceError,
    Unauthenticated,
    Unavailable,
)
from servicekit.errors import StorageUnavailable as _ServicekitStorageUnavailable

if TYPE_CHECKING:
    from collections.abc import Sequence


class AuthError(ServiceError):
    """Base of the auth service's own errors.

    It sets no status code on purpose: the kind mixed in after it decides.
    """


class InvalidSessionToken(AuthError, Unauthenticated):
    """The session token is malformed, unknown, expired or has a wrong secret.

    The message is the same in every case so that a caller cannot probe which part
    of a token is right.
    """

    def __init__(self) -> None:
        super().__init__("the session token is invalid or expired")


class StateMismatch(AuthError, InvalidArgument):
    """The ``state`` of an OAuth callback is not the one kept since the login started."""

    def __init__(self) -> None:
        super().__init__("state", "does not match expected_state")


class ProviderNotConfigured(AuthError, FailedPrecondition):
    """The provider has no client credentials on this service; says which to set."""

    def __init__(self, provider: str, env_vars: Sequence[str]) -> None:
        super().__init__(
            f"the {provider} provider is not configured on this service: set {', '.join(env_vars)}"
        )
        self.provider = provider
        self.env_vars = tuple(env_vars)


class ProviderRejected(AuthError, PermissionDenied):
    """The provider refused the login, or what it answered did not verify.

    ``problem`` goes to the caller and stays generic ("the identity token did not
    verify"); ``detail`` says precisely what failed, for server logs only.
    """

    def __init__(self, provider: str, problem: str, *, detail: str = "") -> None:
        super().__init__(f"{provider} rejected the login: {problem}")
        self.provider = provider
        self.detail = detail or problem


class ProviderUnavailable(AuthError, Unavailable):
    """The provider could not be reached, timed out, failed (5xx) or rate-limited us.

    Retrying later may succeed.
    """

    def __init__(self, provider: str, problem: str) -> None:
        super().__init__(f"{provider} is unavailable: {problem}; retry later")
        self.provider = provider


class AccountLinkedToAnotherUser(AuthError, AlreadyExists):
    """The provider account is already linked to a different user (who is not named)."""

    def __init__(self, provider: str, provider_user_id: str) -> None:
        super().__init__(f"this {provider} account is already linked to another user")
        self.provider = provider
        self.provider_user_id = provider_user_id


class OauthAccountNotFound(AuthError, NotFound):
    """No user is linked to this provider account."""

    def __init__(self, provider: str, provider_user_id: str) -> None:
        super().__init__(f"no user is linked to {provider} account {provider_user_id!r}")
        self.provider = provider
        self.provider_user_id = provider_user_id


class StorageUnavailable(AuthError, _ServicekitStorageUnavailable):
    """The database could not be reached.

    Also a :class:`servicekit.errors.StorageUnavailable`, which is what
    ``servicekit.postgres.storage_errors`` raises: code catching either works.
    """
