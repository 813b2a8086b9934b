"""Login with an OAuth provider, and the development-only login.

``GET /auth/{provider}/login`` asks auth for the provider's URL and redirects there,
keeping ``state`` and the PKCE verifier in short-lived HttpOnly cookies.
``GET /auth/{provider}/callback`` hands them with the provider's ``code`` and ``state``
to auth.HandleOauthCallback (which compares the states in constant time), finds the
user (linked account, else by e-mail, else a new user), links the account, creates a
session, sets its cookie, expires the OAuth cookies and redirects to the public URL.

``POST /auth/dev/login`` (:data:`dev_router`) logs in by e-mail without a provider. It
exists only in the ``local`` environment: elsewhere ``create_app`` does not register it,
so it answers exactly what a route that does not exist answers (before any CSRF check or
body validation, which a registered route would run first), and the OpenAPI document
does not list it.
"""

from __future__ import annotations

from typing import Annotated

import grpc
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from auth import auth_pb2
from gateway import models
from gateway.clients import Clients
from gateway.deps import NEEDS_CSRF, get_clients, get_settings, require_csrf_header
from gateway.errors import ApiError, error_responses
from gateway.routes import convert
from gateway.sessions import expire_cookie, only_cookie, set_cookie, set_session_cookie
from user import user_pb2

router = APIRouter(prefix="/auth", tags=["auth"])
dev_router = APIRouter(prefix="/auth", tags=["auth"])

PROVIDERS = {
    "google": auth_pb2.PROVIDER_GOOGLE,
    "github": auth_pb2.PROVIDER_GITHUB,
}
STATE_COOKIE = "oauth_state"
VERIFIER_COOKIE = "oauth_verifier"

ProviderName = Annotated[str, Path(description="google or github; anything else is 404")]


def _provider(name: str) -> auth_pb2.Provider.ValueType:
    provider = PROVIDERS.get(name)
    if provider is None:
        raise ApiError(404, "unknown_provider", f"no login provider {name!r}")
    return provider


def _oauth_cookie(request: Request, name: str) -> str:
    def ambiguous() -> ApiError:
        return ApiError(
            400,
            "ambiguous_cookie",
            f"the request carries more than one {name!r} cookie; log in again",
        )

    return only_cookie(request, name, ambiguous)


async def find_or_create_user(
    clients: Clients, email: str, name: str = "", avatar_url: str = ""
) -> user_pb2.User:
    """The user with this e-mail, created when there is none (a concurrent create wins)."""
    try:
        return (
            await clients.user.get_user_by_email(user_pb2.GetUserByEmailRequest(email=email))
        ).user
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
    try:
        request = user_pb2.CreateUserRequest(email=email, name=name, avatar_url=avatar_url)
        return (await clients.user.create_user(request)).user
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    return (await clients.user.get_user_by_email(user_pb2.GetUserByEmailRequest(email=email))).user


@router.get(
    "/{provider}/login",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        302: {"description": "Redirect to the provider; sets the state and verifier cookies"},
        **error_responses(404, 409),
    },
    summary="Start a login with a provider",
)
async def login(provider: ProviderName, request: Request) -> RedirectResponse:
    settings = get_settings(request)
    answer = await get_clients(request).auth.start_oauth_login(
        auth_pb2.StartOauthLoginRequest(provider=_provider(provider))
    )
    response = RedirectResponse(answer.authorization_url, status_code=status.HTTP_302_FOUND)
    age = settings.oauth_cookie_max_age_seconds
    set_cookie(response, settings, STATE_COOKIE, answer.state, max_age=age)
    if answer.code_verifier:
        set_cookie(response, settings, VERIFIER_COOKIE, answer.code_verifier, max_age=age)
    return response


@router.get(
    "/{provider}/callback",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses={
        303: {"description": "Logged in: session cookie set, redirect to the public URL"},
        **error_responses(400, 403, 404, 409),
    },
    summary="Finish a login: the provider redirects the browser here",
)
async def callback(
    provider: ProviderName,
    request: Request,
    code: Annotated[str, Query(max_length=4096)] = "",
    state: Annotated[str, Query(max_length=4096)] = "",
    error: Annotated[str, Query(max_length=256, description="set when the user refused")] = "",
) -> RedirectResponse:
    settings = get_settings(request)
    clients = get_clients(request)
    chosen = _provider(provider)
    if error:
        raise ApiError(403, "oauth_refused", "the provider did not grant the login")
    answer = await clients.auth.handle_oauth_callback(
        auth_pb2.HandleOauthCallbackRequest(
            provider=chosen,
            code=code,
            state=state,
            expected_state=_oauth_cookie(request, STATE_COOKIE),
            code_verifier=_oauth_cookie(request, VERIFIER_COOKIE),
        )
    )
    identity = answer.identity
    user_id = answer.user_id
    if not user_id:
        user = await find_or_create_user(
            clients, identity.email, identity.name, identity.avatar_url
        )
        user_id = user.id
        await clients.auth.link_oauth_account(
            auth_pb2.LinkOauthAccountRequest(
                provider=chosen, provider_user_id=identity.provider_user_id, user_id=user_id
            )
        )
    session = await clients.auth.create_session(auth_pb2.CreateSessionRequest(user_id=user_id))
    response = RedirectResponse(settings.public_base_url, status_code=status.HTTP_303_SEE_OTHER)
    set_session_cookie(response, settings, session.token, session.session)
    expire_cookie(response, settings, STATE_COOKIE)
    expire_cookie(response, settings, VERIFIER_COOKIE)
    return response


@dev_router.post(
    "/dev/login",
    dependencies=[Depends(require_csrf_header)],
    openapi_extra=NEEDS_CSRF,
    responses=error_responses(400, 403, 409, 413, 422),
    summary="Development only (environment local; absent elsewhere): log in by e-mail",
)
async def dev_login(body: models.DevLogin, request: Request, response: Response) -> models.User:
    settings = get_settings(request)
    clients = get_clients(request)
    user = await find_or_create_user(clients, body.email, body.name)
    session = await clients.auth.create_session(auth_pb2.CreateSessionRequest(user_id=user.id))
    set_session_cookie(response, settings, session.token, session.session)
    return convert.user(user)
