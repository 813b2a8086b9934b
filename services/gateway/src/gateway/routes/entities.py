"""CRUD on the session user's dummy entities; the owner is always the session's user."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status

from dummy import dummy_pb2
from gateway import models
from gateway.deps import (
    NEEDS_SESSION,
    NEEDS_SESSION_AND_CSRF,
    get_clients,
    require_csrf_header,
)
from gateway.errors import error_responses
from gateway.routes import convert
from gateway.sessions import SessionDep

router = APIRouter(prefix="/entities", tags=["entities"])
_CSRF = [Depends(require_csrf_header)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=_CSRF,
    openapi_extra=NEEDS_SESSION_AND_CSRF,
    responses=error_responses(400, 401, 403, 409, 413, 422),
    summary="Create an entity (Location: its URL)",
)
async def create_entity(
    body: models.EntityCreate, session: SessionDep, request: Request, response: Response
) -> models.Entity:
    answer = await get_clients(request).dummy.create_entity(
        dummy_pb2.CreateEntityRequest(
            owner_id=session.user_id,
            name=body.name,
            description=body.description,
            request_id=str(body.request_id) if body.request_id else "",
        )
    )
    response.headers["Location"] = f"/entities/{answer.entity.id}"
    return convert.entity(answer.entity)


@router.get(
    "",
    responses=error_responses(400, 401, 422),
    openapi_extra=NEEDS_SESSION,
    summary="List entities, oldest first",
)
async def list_entities(
    session: SessionDep,
    request: Request,
    page_size: Annotated[int, Query(ge=1, le=100, description="default 50")] = 50,
    page_token: Annotated[
        str, Query(max_length=1024, description="next_page_token of the previous page")
    ] = "",
) -> models.EntityPage:
    answer = await get_clients(request).dummy.list_entities(
        dummy_pb2.ListEntitiesRequest(
            owner_id=session.user_id, page_size=page_size, page_token=page_token
        )
    )
    return models.EntityPage(
        entities=[convert.entity(entity) for entity in answer.entities],
        next_page_token=answer.next_page_token,
    )


@router.get(
    "/{entity_id}",
    responses=error_responses(400, 401, 404, 422),
    openapi_extra=NEEDS_SESSION,
    summary="Get one",
)
async def get_entity(entity_id: UUID, session: SessionDep, request: Request) -> models.Entity:
    answer = await get_clients(request).dummy.get_entity(
        dummy_pb2.GetEntityRequest(owner_id=session.user_id, id=str(entity_id))
    )
    return convert.entity(answer.entity)


@router.patch(
    "/{entity_id}",
    dependencies=_CSRF,
    openapi_extra=NEEDS_SESSION_AND_CSRF,
    responses=error_responses(400, 401, 403, 404, 413, 422),
    summary="Change the fields given",
)
async def update_entity(
    entity_id: UUID, body: models.EntityUpdate, session: SessionDep, request: Request
) -> models.Entity:
    answer = await get_clients(request).dummy.update_entity(
        dummy_pb2.UpdateEntityRequest(
            owner_id=session.user_id,
            id=str(entity_id),
            name=body.name,
            description=body.description,
        )
    )
    return convert.entity(answer.entity)


@router.delete(
    "/{entity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=_CSRF,
    openapi_extra=NEEDS_SESSION_AND_CSRF,
    responses=error_responses(400, 401, 403, 404, 422),
    summary="Delete one",
)
async def delete_entity(entity_id: UUID, session: SessionDep, request: Request) -> None:
    await get_clients(request).dummy.delete_entity(
        dummy_pb2.DeleteEntityRequest(owner_id=session.user_id, id=str(entity_id))
    )
