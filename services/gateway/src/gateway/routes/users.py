"""The session's user, and logout."""

from __future__ import annotations

import grpc
from fastapi import APIRouter, Depends, Request, Response, status

from auth import auth_pb2
from gateway import models
from gateway.deps import (
    NEEDS_SESSION,
    NEEDS_SESSION_AND_CSRF,
    get_clients,
    get_settings,
    require_csrf_header,
)
from gateway.errors import error_responses
from gateway.routes import convert
from gateway.sessions import SessionDep, expire_cookie
from user import user_pb2

router = APIRouter(tags=["users"])


@router.get(
    "/user/me",
    responses=error_responses(401, 404),
    openapi_extra=NEEDS_SESSION,
    summary="The session's user",
)
async def me(session: SessionDep, request: Request) -> models.User:
    answer = await get_clients(request).user.get_user(user_pb2.GetUserRequest(id=session.user_id))
    return convert.user(answer.user)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[Depends(require_csrf_header)],
    openapi_extra=NEEDS_SESSION_AND_CSRF,
    responses=error_responses(401, 403),
    summary="Delete the session and expire its cookie",
)
async def logout(session: SessionDep, request: Request, response: Response) -> None:
    try:
        await get_clients(request).auth.delete_session(
            auth_pb2.DeleteSessionRequest(token=session.token)
        )
    except grpc.aio.AioRpcError as error:
        # Gone in the meantime (expired, deleted by a concurrent logout): logged out anyway.
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise
    settings = get_settings(request)
    expire_cookie(response, settings, settings.session_cookie_name)
