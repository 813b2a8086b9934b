"""The auth errors map to the status codes the contract promises, and leak nothing."""

from __future__ import annotations

import grpc
import pytest

from auth.errors import (
    AccountLinkedToAnotherUser,
    AuthError,
    InvalidSessionToken,
    OauthAccountNotFound,
    ProviderNotConfigured,
    ProviderRejected,
    ProviderUnavailable,
    StateMismatch,
    StorageUnavailable,
)
from servicekit.errors import ServiceError, status_of
from servicekit.errors import StorageUnavailable as ServicekitStorageUnavailable


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        pytest.param(
            InvalidSessionToken(),
            grpc.StatusCode.UNAUTHENTICATED,
            "the session token is invalid or expired",
            id="invalid-session-token",
        ),
        pytest.param(
            StateMismatch(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "state: does not match expected_state",
            id="state-mismatch",
        ),
        pytest.param(
            ProviderNotConfigured("google", ["AUTH_GOOGLE_CLIENT_ID", "AUTH_GOOGLE_CLIENT_SECRET"]),
            grpc.StatusCode.FAILED_PRECONDITION,
            "the google provider is not configured on this service: "
            "set AUTH_GOOGLE_CLIENT_ID, AUTH_GOOGLE_CLIENT_SECRET",
            id="provider-not-configured",
        ),
        pytest.param(
            ProviderRejected("github", "the authorization code was refused", detail="bad code"),
            grpc.StatusCode.PERMISSION_DENIED,
            "github rejected the login: the authorization code was refused",
            id="provider-rejected",
        ),
        pytest.param(
            ProviderUnavailable("google", "timed out"),
            grpc.StatusCode.UNAVAILABLE,
            "google is unavailable: timed out; retry later",
            id="provider-unavailable",
        ),
        pytest.param(
            AccountLinkedToAnotherUser("github", "42"),
            grpc.StatusCode.ALREADY_EXISTS,
            "this github account is already linked to another user",
            id="account-linked-to-another-user",
        ),
        pytest.param(
            OauthAccountNotFound("google", "1234"),
            grpc.StatusCode.NOT_FOUND,
            "no user is linked to google account '1234'",
            id="oauth-account-not-found",
        ),
        pytest.param(
            StorageUnavailable(),
            grpc.StatusCode.UNAVAILABLE,
            "storage is unavailable, retry later",
            id="storage-unavailable",
        ),
    ],
)
def test_status_of_auth_errors(error: AuthError, code: grpc.StatusCode, message: str) -> None:
    assert isinstance(error, AuthError)
    assert isinstance(error, ServiceError)
    assert status_of(error) == (code, message)


def test_rejection_detail_stays_out_of_the_message() -> None:
    error = ProviderRejected("google", "the identity token did not verify", detail="claim aud")

    assert error.detail == "claim aud"
    assert "aud" not in status_of(error)[1]


def test_auth_storage_unavailable_is_servicekit_storage_unavailable() -> None:
    with pytest.raises(ServicekitStorageUnavailable):
        raise StorageUnavailable()
