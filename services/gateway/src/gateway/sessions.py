"""The session: cookie -> auth.ValidateSession -> the user id; and the cookie flags.

Cookies are HttpOnly and SameSite=Lax (Lax so that the OAuth provider's redirect back,
a top-level GET, carries the state cookies); in production they are also Secure. In
``local`` Secure is off so that plain http://localhost works.

A cookie the gateway reads must come once: a browser sends two of the same name when
another path or a parent domain set one too (a sibling subdomain can "toss" a cookie
for the parent domain), and which one a server picks would then decide the session or
the OAuth state. So a name sent more than once is refused, whatever the order: the
session with 401 ``ambiguous_session``, the OAuth cookies with 400 ``ambiguous_cookie``
(:func:`only_cookie`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import grpc
from fastapi import Depends, Request, Response
from starlette.requests import cookie_parser

from auth import AuthClient, auth_pb2
from gateway.deps import get_clients, get_settings
from gateway.errors import ApiError, from_grpc
from gateway.settings import GatewaySettings


@dataclass(frozen=True)
class CurrentSession:
    user_id: str
    token: str


def set_cookie(
    response: Response,
    settings: GatewaySettings,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    expires: datetime | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        expires=expires,
        path="/",
        httponly=True,
        secure=not settings.is_local,
        samesite="lax",
    )


def expire_cookie(response: Response, settings: GatewaySettings, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, secure=not settings.is_local, samesite="lax"
    )


def set_session_cookie(
    response: Response, settings: GatewaySettings, token: str, session: auth_pb2.Session
) -> None:
    expires = (
        session.expire_time.ToDatetime(tzinfo=UTC) if session.HasField("expire_time") else None
    )
    max_age = None
    if expires is not None:
        max_age = max(0, int((expires - datetime.now(UTC)).total_seconds()))
    set_cookie(response, settings, settings.session_cookie_name, token, max_age=max_age)


def reissue_refreshed_cookie(request: Request, response: Response) -> None:
    """Set the cookie of a session refreshed while handling ``request`` on ``response``."""
    refreshed = getattr(request.state, "refreshed_session", None)
    if refreshed is not None:
        token, session = refreshed
        set_session_cookie(response, get_settings(request), token, session)


def cookie_values(request: Request, name: str) -> list[str]:
    """Every value the request's ``Cookie`` headers give ``name``, in order, each parsed
    as Starlette parses cookies (``request.cookies`` keeps only the last)."""
    return [
        value
        for header in request.headers.getlist("cookie")
        for pair in header.split(";")
        for key, value in cookie_parser(pair).items()
        if key == name
    ]


def only_cookie(request: Request, name: str, ambiguous: Callable[[], ApiError]) -> str:
    """The value of the cookie ``name`` ("" when absent); the error ``ambiguous`` makes is
    raised when the request carries it more than once (made only then: building an
    exception on every request cost the gateway 3 % of its CPU)."""
    values = cookie_values(request, name)
    if len(values) > 1:
        raise ambiguous()
    return values[0] if values else ""


def _ambiguous_session(name: str) -> ApiError:
    return ApiError(
        401,
        "ambiguous_session",
        f"the request carries more than one {name!r} cookie; "
        "delete this site's cookies and log in again",
    )


def _unauthenticated() -> ApiError:
    return ApiError(401, "unauthenticated", "no valid session; log in")


async def validate(auth: AuthClient, token: str) -> auth_pb2.ValidateSessionResponse:
    try:
        return await auth.validate_session(auth_pb2.ValidateSessionRequest(token=token))
    except grpc.aio.AioRpcError as error:
        if error.code() in {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT}:
            raise _unauthenticated() from None
        raise from_grpc(error) from None


async def current_session(request: Request, response: Response) -> CurrentSession:
    """The session of the request's cookie; 401 without one; re-issues a refreshed cookie."""
    settings = get_settings(request)
    name = settings.session_cookie_name
    token = only_cookie(request, name, lambda: _ambiguous_session(name))
    if not token:
        raise _unauthenticated()
    answer = await validate(get_clients(request).auth, token)
    if answer.refreshed:
        set_session_cookie(response, settings, token, answer.session)
        # An error answer is a new response: the error handlers re-issue it from here.
        request.state.refreshed_session = (token, answer.session)
    return CurrentSession(user_id=answer.session.user_id, token=token)


SessionDep = Annotated[CurrentSession, Depends(current_session)]
