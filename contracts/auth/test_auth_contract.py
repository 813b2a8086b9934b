"""The auth service's contract: what every implementation must do, seen through gRPC only.

Fixtures the runner provides:
  ``auth_stub``                    the implementation under test, Google and GitHub
                                   configured, empty storage at the start of each test;
  ``auth_stub_without_providers``  the same implementation with no provider configured;
  ``oauth_consent(provider, url)``  the user consents at the provider's authorization
                                   URL; returns the code the callback receives.
Time-dependent rules (expiry, sliding refresh) need a clock the test controls and are
covered by the unit tests of auth.sessions and the session RPCs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import grpc
import pytest

from auth.v1 import auth_pb2 as pb
from contracts.support import REFUSED_CHARACTERS, expect_status

if TYPE_CHECKING:
    # the stub's asyncio flavour only exists for the type checker
    from auth.v1.auth_pb2_grpc import AuthServiceAsyncStub as AuthServiceStub

Code = grpc.StatusCode
Consent = Callable[[pb.Provider.ValueType, str], str]
PROVIDERS = [pb.PROVIDER_GOOGLE, pb.PROVIDER_GITHUB]
PROVIDER_IDS = ["google", "github"]
SEVEN_DAYS = timedelta(days=7)


async def new_session(
    stub: AuthServiceStub, user_id: str | None = None
) -> pb.CreateSessionResponse:
    return await stub.CreateSession(pb.CreateSessionRequest(user_id=user_id or str(uuid4())))


def tampered(token: str) -> str:
    session_id, secret = token.split(".")
    flipped = "A" if secret[-1] != "A" else "B"
    return f"{session_id}.{secret[:-1]}{flipped}"


# ---------------------------------------------------------------- sessions


async def test_create_session_returns_a_token_of_id_and_secret(auth_stub: AuthServiceStub) -> None:
    user_id = str(uuid4())
    created = await new_session(auth_stub, user_id)
    session_id, dot, secret = created.token.partition(".")
    assert dot
    assert session_id
    assert secret
    assert created.session.id == session_id
    assert created.session.user_id == user_id
    expires = created.session.expire_time.ToDatetime(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + SEVEN_DAYS)) < timedelta(minutes=1)


async def test_every_session_gets_its_own_token(auth_stub: AuthServiceStub) -> None:
    user_id = str(uuid4())
    first, second = await new_session(auth_stub, user_id), await new_session(auth_stub, user_id)
    assert first.token != second.token
    assert first.session.id != second.session.id


@pytest.mark.parametrize("user_id", ["", "nope", "1234"], ids=["missing", "word", "number"])
async def test_create_session_needs_a_uuid(auth_stub: AuthServiceStub, user_id: str) -> None:
    call = auth_stub.CreateSession(pb.CreateSessionRequest(user_id=user_id))
    await expect_status(call, Code.INVALID_ARGUMENT, mentions="user_id")


async def test_a_fresh_session_validates_without_refresh(auth_stub: AuthServiceStub) -> None:
    created = await new_session(auth_stub)
    validated = await auth_stub.ValidateSession(pb.ValidateSessionRequest(token=created.token))
    assert validated.session == created.session
    assert validated.refreshed is False


async def test_an_empty_token_is_invalid_argument(auth_stub: AuthServiceStub) -> None:
    await expect_status(
        auth_stub.ValidateSession(pb.ValidateSessionRequest(token="")),
        Code.INVALID_ARGUMENT,
        mentions="token",
    )
    await expect_status(
        auth_stub.DeleteSession(pb.DeleteSessionRequest(token="")),
        Code.INVALID_ARGUMENT,
        mentions="token",
    )


BAD_TOKENS: dict[str, Callable[[str], str]] = {
    "no dot": lambda token: token.replace(".", ""),
    "two dots": lambda token: token + ".x",
    "wrong secret": tampered,
    "unknown id": lambda token: "a" * len(token.split(".")[0]) + "." + token.split(".")[1],
    "secret only": lambda token: token.split(".")[1],
    "oversized": lambda token: token * 500,
    "non-ascii": lambda token: token[:-1] + "é",
}


@pytest.mark.parametrize("spoil", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_tokens_are_unauthenticated_and_change_nothing(
    auth_stub: AuthServiceStub, spoil: Callable[[str], str]
) -> None:
    created = await new_session(auth_stub)
    bad = spoil(created.token)
    error = await expect_status(
        auth_stub.ValidateSession(pb.ValidateSessionRequest(token=bad)), Code.UNAUTHENTICATED
    )
    assert created.token.split(".")[1] not in (error.details() or "")
    await expect_status(
        auth_stub.DeleteSession(pb.DeleteSessionRequest(token=bad)), Code.UNAUTHENTICATED
    )
    # the real session survived both calls, unchanged
    validated = await auth_stub.ValidateSession(pb.ValidateSessionRequest(token=created.token))
    assert validated.session == created.session


async def test_all_bad_tokens_get_one_answer(auth_stub: AuthServiceStub) -> None:
    """The message never tells which part of a token was wrong."""
    created = await new_session(auth_stub)
    messages = set()
    for spoil in BAD_TOKENS.values():
        error = await expect_status(
            auth_stub.ValidateSession(pb.ValidateSessionRequest(token=spoil(created.token))),
            Code.UNAUTHENTICATED,
        )
        messages.add(error.details())
    assert len(messages) == 1


async def test_logout_ends_only_that_session(auth_stub: AuthServiceStub) -> None:
    user_id = str(uuid4())
    ended, kept = await new_session(auth_stub, user_id), await new_session(auth_stub, user_id)
    await auth_stub.DeleteSession(pb.DeleteSessionRequest(token=ended.token))
    await expect_status(
        auth_stub.ValidateSession(pb.ValidateSessionRequest(token=ended.token)),
        Code.UNAUTHENTICATED,
    )
    await expect_status(
        auth_stub.DeleteSession(pb.DeleteSessionRequest(token=ended.token)), Code.UNAUTHENTICATED
    )
    await auth_stub.ValidateSession(pb.ValidateSessionRequest(token=kept.token))


# ---------------------------------------------------------------- OAuth login


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@pytest.mark.parametrize("provider", PROVIDERS, ids=PROVIDER_IDS)
async def test_start_login_gives_url_state_and_pkce(
    auth_stub: AuthServiceStub, provider: pb.Provider.ValueType
) -> None:
    started = await auth_stub.StartOauthLogin(pb.StartOauthLoginRequest(provider=provider))
    url = urlsplit(started.authorization_url)
    query = parse_qs(url.query)
    # the provider's authorization endpoint as configured: https at Google and GitHub, plain
    # http where a stack's provider fakes are served (--harness-contract-target=process/image)
    assert url.scheme in {"https", "http"}
    assert url.netloc
    assert query["state"] == [started.state]
    assert len(started.state) >= 16
    assert query["code_challenge"] == [s256(started.code_verifier)]
    assert query["code_challenge_method"] == ["S256"]
    again = await auth_stub.StartOauthLogin(pb.StartOauthLoginRequest(provider=provider))
    assert again.state != started.state
    assert again.code_verifier != started.code_verifier


async def test_start_login_needs_a_provider(auth_stub: AuthServiceStub) -> None:
    call = auth_stub.StartOauthLogin(pb.StartOauthLoginRequest(provider=pb.PROVIDER_UNSPECIFIED))
    await expect_status(call, Code.INVALID_ARGUMENT, mentions="provider")


@pytest.mark.parametrize(
    ("provider", "variable"),
    [(pb.PROVIDER_GOOGLE, "AUTH_GOOGLE_CLIENT_ID"), (pb.PROVIDER_GITHUB, "AUTH_GITHUB_CLIENT_ID")],
    ids=PROVIDER_IDS,
)
async def test_an_unconfigured_provider_is_failed_precondition(
    auth_stub_without_providers: AuthServiceStub, provider: pb.Provider.ValueType, variable: str
) -> None:
    await expect_status(
        auth_stub_without_providers.StartOauthLogin(pb.StartOauthLoginRequest(provider=provider)),
        Code.FAILED_PRECONDITION,
        mentions=variable,
    )
    await expect_status(
        auth_stub_without_providers.HandleOauthCallback(
            pb.HandleOauthCallbackRequest(
                provider=provider, code="c", state="s", expected_state="s", code_verifier="v" * 43
            )
        ),
        Code.FAILED_PRECONDITION,
        mentions=variable,
    )


async def login(
    stub: AuthServiceStub, consent: Consent, provider: pb.Provider.ValueType
) -> tuple[pb.HandleOauthCallbackRequest, pb.HandleOauthCallbackResponse]:
    started = await stub.StartOauthLogin(pb.StartOauthLoginRequest(provider=provider))
    request = pb.HandleOauthCallbackRequest(
        provider=provider,
        code=consent(provider, started.authorization_url),
        state=started.state,
        expected_state=started.state,
        code_verifier=started.code_verifier,
    )
    return request, await stub.HandleOauthCallback(request)


@pytest.mark.parametrize("provider", PROVIDERS, ids=PROVIDER_IDS)
async def test_a_login_returns_the_verified_identity_then_its_link(
    auth_stub: AuthServiceStub, oauth_consent: Consent, provider: pb.Provider.ValueType
) -> None:
    _, first = await login(auth_stub, oauth_consent, provider)
    identity = first.identity
    assert identity.provider == provider
    assert identity.provider_user_id
    assert "@" in identity.email
    assert first.user_id == ""  # not linked yet
    user_id = str(uuid4())
    await auth_stub.LinkOauthAccount(
        pb.LinkOauthAccountRequest(
            provider=provider, provider_user_id=identity.provider_user_id, user_id=user_id
        )
    )
    _, second = await login(auth_stub, oauth_consent, provider)
    assert second.identity == identity
    assert second.user_id == user_id


@pytest.mark.parametrize("provider", PROVIDERS, ids=PROVIDER_IDS)
async def test_a_code_is_spent_once(
    auth_stub: AuthServiceStub, oauth_consent: Consent, provider: pb.Provider.ValueType
) -> None:
    request, _ = await login(auth_stub, oauth_consent, provider)
    await expect_status(auth_stub.HandleOauthCallback(request), Code.PERMISSION_DENIED)


# Each case spoils one field of a callback that would otherwise succeed.
SPOILED_CALLBACKS = {
    "state does not match": ({"state": "forged-state"}, Code.INVALID_ARGUMENT, "state"),
    "state empty": ({"state": ""}, Code.INVALID_ARGUMENT, "state"),
    "expected_state empty": ({"expected_state": ""}, Code.INVALID_ARGUMENT, "expected_state"),
    "code empty": ({"code": ""}, Code.INVALID_ARGUMENT, "code"),
    "provider unspecified": (
        {"provider": pb.PROVIDER_UNSPECIFIED},
        Code.INVALID_ARGUMENT,
        "provider",
    ),
    "unknown code": ({"code": "made-up-code"}, Code.PERMISSION_DENIED, None),
    "wrong PKCE verifier": ({"code_verifier": "w" * 64}, Code.PERMISSION_DENIED, None),
}


@pytest.mark.parametrize("provider", PROVIDERS, ids=PROVIDER_IDS)
@pytest.mark.parametrize(
    ("change", "code", "field"), SPOILED_CALLBACKS.values(), ids=SPOILED_CALLBACKS.keys()
)
async def test_a_spoiled_callback_is_refused(
    auth_stub: AuthServiceStub,
    oauth_consent: Consent,
    provider: pb.Provider.ValueType,
    change: dict[str, object],
    code: grpc.StatusCode,
    field: str | None,
) -> None:
    started = await auth_stub.StartOauthLogin(pb.StartOauthLoginRequest(provider=provider))
    request = pb.HandleOauthCallbackRequest(
        provider=provider,
        code=oauth_consent(provider, started.authorization_url),
        state=started.state,
        expected_state=started.state,
        code_verifier=started.code_verifier,
    )
    for name, value in change.items():
        setattr(request, name, value)
    await expect_status(auth_stub.HandleOauthCallback(request), code, mentions=field)


async def test_google_needs_the_pkce_verifier(
    auth_stub: AuthServiceStub, oauth_consent: Consent
) -> None:
    started = await auth_stub.StartOauthLogin(
        pb.StartOauthLoginRequest(provider=pb.PROVIDER_GOOGLE)
    )
    request = pb.HandleOauthCallbackRequest(
        provider=pb.PROVIDER_GOOGLE,
        code=oauth_consent(pb.PROVIDER_GOOGLE, started.authorization_url),
        state=started.state,
        expected_state=started.state,
    )
    await expect_status(
        auth_stub.HandleOauthCallback(request), Code.INVALID_ARGUMENT, mentions="code_verifier"
    )


# ---------------------------------------------------------------- account links


async def test_link_then_get(auth_stub: AuthServiceStub) -> None:
    user_id = str(uuid4())
    linked = await auth_stub.LinkOauthAccount(
        pb.LinkOauthAccountRequest(
            provider=pb.PROVIDER_GITHUB, provider_user_id="42", user_id=user_id
        )
    )
    assert (linked.account.provider, linked.account.provider_user_id) == (pb.PROVIDER_GITHUB, "42")
    assert linked.account.user_id == user_id
    fetched = await auth_stub.GetOauthAccount(
        pb.GetOauthAccountRequest(provider=pb.PROVIDER_GITHUB, provider_user_id="42")
    )
    assert fetched.account == linked.account


async def test_linking_is_idempotent_for_the_same_user(auth_stub: AuthServiceStub) -> None:
    request = pb.LinkOauthAccountRequest(
        provider=pb.PROVIDER_GOOGLE, provider_user_id="sub-1", user_id=str(uuid4())
    )
    first = await auth_stub.LinkOauthAccount(request)
    again = await auth_stub.LinkOauthAccount(request)
    assert again.account == first.account


async def test_an_account_links_to_one_user_only(auth_stub: AuthServiceStub) -> None:
    owner = str(uuid4())
    await auth_stub.LinkOauthAccount(
        pb.LinkOauthAccountRequest(
            provider=pb.PROVIDER_GOOGLE, provider_user_id="sub-1", user_id=owner
        )
    )
    error = await expect_status(
        auth_stub.LinkOauthAccount(
            pb.LinkOauthAccountRequest(
                provider=pb.PROVIDER_GOOGLE, provider_user_id="sub-1", user_id=str(uuid4())
            )
        ),
        Code.ALREADY_EXISTS,
    )
    assert owner not in (error.details() or "")
    fetched = await auth_stub.GetOauthAccount(
        pb.GetOauthAccountRequest(provider=pb.PROVIDER_GOOGLE, provider_user_id="sub-1")
    )
    assert fetched.account.user_id == owner
    # the same id at the other provider is a different account
    await auth_stub.LinkOauthAccount(
        pb.LinkOauthAccountRequest(
            provider=pb.PROVIDER_GITHUB, provider_user_id="sub-1", user_id=str(uuid4())
        )
    )


async def test_an_unlinked_account_is_not_found(auth_stub: AuthServiceStub) -> None:
    await expect_status(
        auth_stub.GetOauthAccount(
            pb.GetOauthAccountRequest(provider=pb.PROVIDER_GOOGLE, provider_user_id="nobody")
        ),
        Code.NOT_FOUND,
    )


INVALID_LINKS = {
    "provider unspecified": (pb.PROVIDER_UNSPECIFIED, "42", str(uuid4()), "provider"),
    "provider_user_id empty": (pb.PROVIDER_GOOGLE, "", str(uuid4()), "provider_user_id"),
    "provider_user_id of 256 characters": (
        pb.PROVIDER_GOOGLE,
        "9" * 256,
        str(uuid4()),
        "provider_user_id",
    ),
    "user_id missing": (pb.PROVIDER_GOOGLE, "42", "", "user_id"),
    "user_id malformed": (pb.PROVIDER_GOOGLE, "42", "me", "user_id"),
}


@pytest.mark.parametrize(
    ("provider", "provider_user_id", "user_id", "field"),
    INVALID_LINKS.values(),
    ids=INVALID_LINKS.keys(),
)
async def test_link_rejects_invalid_fields(
    auth_stub: AuthServiceStub,
    provider: pb.Provider.ValueType,
    provider_user_id: str,
    user_id: str,
    field: str,
) -> None:
    call = auth_stub.LinkOauthAccount(
        pb.LinkOauthAccountRequest(
            provider=provider, provider_user_id=provider_user_id, user_id=user_id
        )
    )
    await expect_status(call, Code.INVALID_ARGUMENT, mentions=field)
    if field != "provider":
        get = auth_stub.GetOauthAccount(
            pb.GetOauthAccountRequest(provider=provider, provider_user_id=provider_user_id)
        )
        if provider_user_id and len(provider_user_id) <= 255:
            await expect_status(get, Code.NOT_FOUND)  # nothing was stored
        else:
            await expect_status(get, Code.INVALID_ARGUMENT, mentions="provider_user_id")


@pytest.mark.parametrize(
    ("character", "mention"), REFUSED_CHARACTERS.values(), ids=REFUSED_CHARACTERS.keys()
)
async def test_account_ids_outside_the_text_policy_are_refused(
    auth_stub: AuthServiceStub, character: str, mention: str
) -> None:
    provider_user_id = f"42{character}7"
    link = auth_stub.LinkOauthAccount(
        pb.LinkOauthAccountRequest(
            provider=pb.PROVIDER_GITHUB, provider_user_id=provider_user_id, user_id=str(uuid4())
        )
    )
    get = auth_stub.GetOauthAccount(
        pb.GetOauthAccountRequest(provider=pb.PROVIDER_GITHUB, provider_user_id=provider_user_id)
    )
    for call in (link, get):
        error = await expect_status(call, Code.INVALID_ARGUMENT, mentions="provider_user_id")
        assert mention in (error.details() or "")
