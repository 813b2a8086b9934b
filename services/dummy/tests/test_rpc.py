"""Unit tests of every dummy RPC on the in-memory repository (no network, no database)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from dummy.domain import PageCursor
from dummy.errors import CreatedEntityDeleted, OwnersUnavailable, UnknownOwner
from dummy.owners import InMemoryOwners
from dummy.repository import InMemoryEntityRepository
from dummy.rpc.create_entity import create_entity
from dummy.rpc.delete_entity import delete_entity
from dummy.rpc.get_entity import get_entity
from dummy.rpc.list_entities import list_entities
from dummy.rpc.page_token import encode_page_token
from dummy.rpc.update_entity import update_entity
from dummy.v1 import dummy_pb2 as pb
from fixtures.failures import Failure, expect_failure
from servicekit.errors import InvalidArgument, NotFound, StorageUnavailable

OWNER = UUID("00000000-0000-4000-8000-000000000001")
OTHER_OWNER = UUID("00000000-0000-4000-8000-000000000002")
MISSING = UUID("00000000-0000-4000-8000-00000000dead")


@pytest.fixture
def repository() -> InMemoryEntityRepository:
    return InMemoryEntityRepository()


async def stored(repository: InMemoryEntityRepository, owner: UUID = OWNER) -> pb.Entity:
    response = await create_entity(
        pb.CreateEntityRequest(owner_id=str(owner), name="stored", description="kept"),
        repository,
        InMemoryOwners(),
    )
    return response.entity


# ---------------------------------------------------------------- CreateEntity

CREATE_CASES = {
    "happy path": (pb.CreateEntityRequest(owner_id=str(OWNER), name="a", description="d"), None),
    "name trimmed": (pb.CreateEntityRequest(owner_id=str(OWNER), name="  a  "), None),
    "missing owner": (pb.CreateEntityRequest(name="a"), Failure(InvalidArgument, "owner_id")),
    "malformed owner": (
        pb.CreateEntityRequest(owner_id="not-a-uuid", name="a"),
        Failure(InvalidArgument, "owner_id"),
    ),
    "missing name": (pb.CreateEntityRequest(owner_id=str(OWNER)), Failure(InvalidArgument, "name")),
    "blank name": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="   "),
        Failure(InvalidArgument, "name"),
    ),
    "name too long": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="x" * 201),
        Failure(InvalidArgument, "name"),
    ),
    "description too long": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="a", description="x" * 2001),
        Failure(InvalidArgument, "description"),
    ),
    "name with an ESC colour sequence": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="\x1b[31mred\x1b[0m"),
        Failure(InvalidArgument, "name"),
    ),
    "name with BEL": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="ding\x07"),
        Failure(InvalidArgument, "name"),
    ),
    "name of zero-width characters": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="\u200b\u200c\u200d"),
        Failure(InvalidArgument, "name"),
    ),
    "name with a right-to-left override": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="abc\u202etxt.exe"),
        Failure(InvalidArgument, "name"),
    ),
    "description with a line separator": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="a", description="one\u2028two"),
        Failure(InvalidArgument, "description"),
    ),
    "description over several lines": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="a", description="one\n\ttwo"),
        None,
    ),
    "malformed request id": (
        pb.CreateEntityRequest(owner_id=str(OWNER), name="a", request_id="42"),
        Failure(InvalidArgument, "request_id"),
    ),
}


@pytest.mark.parametrize(("request_", "failure"), CREATE_CASES.values(), ids=CREATE_CASES.keys())
async def test_create_entity(
    repository: InMemoryEntityRepository, request_: pb.CreateEntityRequest, failure: Failure | None
) -> None:
    if failure is not None:
        await expect_failure(create_entity(request_, repository, InMemoryOwners()), failure)
        return
    entity = (await create_entity(request_, repository, InMemoryOwners())).entity
    assert entity.owner_id == request_.owner_id
    assert entity.name == request_.name.strip()
    assert entity.description == request_.description
    assert entity.create_time == entity.update_time
    assert UUID(entity.id)


async def test_create_entity_with_request_id_is_idempotent(
    repository: InMemoryEntityRepository,
) -> None:
    request = pb.CreateEntityRequest(owner_id=str(OWNER), name="once", request_id=str(uuid4()))
    first = (await create_entity(request, repository, InMemoryOwners())).entity
    again = (await create_entity(request, repository, InMemoryOwners())).entity
    assert again == first
    listed = await list_entities(pb.ListEntitiesRequest(owner_id=str(OWNER)), repository)
    assert [e.id for e in listed.entities] == [first.id]


async def test_create_entity_retried_after_its_entity_was_deleted_is_failed_precondition(
    repository: InMemoryEntityRepository,
) -> None:
    request = pb.CreateEntityRequest(owner_id=str(OWNER), name="once", request_id=str(uuid4()))
    first = (await create_entity(request, repository, InMemoryOwners())).entity
    await delete_entity(pb.DeleteEntityRequest(owner_id=str(OWNER), id=first.id), repository)
    await expect_failure(
        create_entity(request, repository, InMemoryOwners()), Failure(CreatedEntityDeleted)
    )
    listed = await list_entities(pb.ListEntitiesRequest(owner_id=str(OWNER)), repository)
    assert list(listed.entities) == []


async def test_create_entity_for_an_owner_who_is_not_a_user_stores_nothing(
    repository: InMemoryEntityRepository,
) -> None:
    owners = InMemoryOwners(known={OTHER_OWNER})
    request = pb.CreateEntityRequest(owner_id=str(OWNER), name="a")
    await expect_failure(create_entity(request, repository, owners), Failure(UnknownOwner))
    assert owners.asked == [OWNER]
    assert (await repository.list(OWNER, None, 10)).entities == []


async def test_create_entity_when_the_user_service_cannot_be_asked(
    repository: InMemoryEntityRepository,
) -> None:
    owners = InMemoryOwners()
    owners.unavailable = True
    request = pb.CreateEntityRequest(owner_id=str(OWNER), name="a")
    await expect_failure(create_entity(request, repository, owners), Failure(OwnersUnavailable))
    assert (await repository.list(OWNER, None, 10)).entities == []


async def test_an_invalid_request_is_refused_before_the_user_service_is_asked(
    repository: InMemoryEntityRepository,
) -> None:
    owners = InMemoryOwners()
    request = pb.CreateEntityRequest(owner_id=str(OWNER), name="")
    await expect_failure(
        create_entity(request, repository, owners), Failure(InvalidArgument, "name")
    )
    assert owners.asked == []


# ---------------------------------------------------------------- Get / Delete

# Requests that name one entity; "{id}" stands for a stored entity of OWNER.
TARGET_CASES = {
    "happy path": ("{owner}", "{id}", None),
    "missing owner": ("", "{id}", Failure(InvalidArgument, "owner_id")),
    "malformed owner": ("x", "{id}", Failure(InvalidArgument, "owner_id")),
    "missing id": ("{owner}", "", Failure(InvalidArgument, "id")),
    "malformed id": ("{owner}", "123", Failure(InvalidArgument, "id")),
    "not found": ("{owner}", str(MISSING), Failure(NotFound)),
    "another owner": (str(OTHER_OWNER), "{id}", Failure(NotFound)),
}


def fill(template: str, entity: pb.Entity) -> str:
    return template.format(owner=OWNER, id=entity.id)


@pytest.mark.parametrize(
    ("owner", "entity_id", "failure"), TARGET_CASES.values(), ids=TARGET_CASES.keys()
)
async def test_get_entity(
    repository: InMemoryEntityRepository, owner: str, entity_id: str, failure: Failure | None
) -> None:
    entity = await stored(repository)
    request = pb.GetEntityRequest(owner_id=fill(owner, entity), id=fill(entity_id, entity))
    if failure is not None:
        await expect_failure(get_entity(request, repository), failure)
        return
    assert (await get_entity(request, repository)).entity == entity


@pytest.mark.parametrize(
    ("owner", "entity_id", "failure"), TARGET_CASES.values(), ids=TARGET_CASES.keys()
)
async def test_delete_entity(
    repository: InMemoryEntityRepository, owner: str, entity_id: str, failure: Failure | None
) -> None:
    entity = await stored(repository)
    request = pb.DeleteEntityRequest(owner_id=fill(owner, entity), id=fill(entity_id, entity))
    if failure is not None:
        await expect_failure(delete_entity(request, repository), failure)
        # a refused delete removes nothing
        assert await repository.get(OWNER, UUID(entity.id)) is not None
        return
    await delete_entity(request, repository)
    await expect_failure(delete_entity(request, repository), Failure(NotFound))


# ---------------------------------------------------------------- UpdateEntity

UPDATE_CASES = {
    "name only": ("{owner}", "{id}", {"name": " new "}, None),
    "description only": ("{owner}", "{id}", {"description": "other"}, None),
    "clear description": ("{owner}", "{id}", {"description": ""}, None),
    "both": ("{owner}", "{id}", {"name": "n", "description": "d"}, None),
    "nothing to change": ("{owner}", "{id}", {}, Failure(InvalidArgument, "name")),
    "blank name": ("{owner}", "{id}", {"name": " "}, Failure(InvalidArgument, "name")),
    "name with ESC": ("{owner}", "{id}", {"name": "\x1b[2J"}, Failure(InvalidArgument, "name")),
    "description with a BOM": (
        "{owner}",
        "{id}",
        {"description": "\ufeffd"},
        Failure(InvalidArgument, "description"),
    ),
    "description too long": (
        "{owner}",
        "{id}",
        {"description": "x" * 2001},
        Failure(InvalidArgument, "description"),
    ),
    "malformed owner": ("x", "{id}", {"name": "n"}, Failure(InvalidArgument, "owner_id")),
    "malformed id": ("{owner}", "x", {"name": "n"}, Failure(InvalidArgument, "id")),
    "not found": ("{owner}", str(MISSING), {"name": "n"}, Failure(NotFound)),
    "another owner": (str(OTHER_OWNER), "{id}", {"name": "n"}, Failure(NotFound)),
}


@pytest.mark.parametrize(
    ("owner", "entity_id", "changes", "failure"), UPDATE_CASES.values(), ids=UPDATE_CASES.keys()
)
async def test_update_entity(
    repository: InMemoryEntityRepository,
    owner: str,
    entity_id: str,
    changes: dict[str, str],
    failure: Failure | None,
) -> None:
    entity = await stored(repository)
    request = pb.UpdateEntityRequest(
        owner_id=fill(owner, entity), id=fill(entity_id, entity), **changes
    )
    if failure is not None:
        await expect_failure(update_entity(request, repository), failure)
        unchanged = (
            await get_entity(pb.GetEntityRequest(owner_id=str(OWNER), id=entity.id), repository)
        ).entity
        assert unchanged == entity
        return
    updated = (await update_entity(request, repository)).entity
    assert updated.name == changes.get("name", entity.name).strip()
    assert updated.description == changes.get("description", entity.description)
    assert updated.create_time == entity.create_time
    assert updated.update_time.ToDatetime() >= entity.update_time.ToDatetime()


# ---------------------------------------------------------------- ListEntities

LIST_FAILURES = {
    "missing owner": (pb.ListEntitiesRequest(), Failure(InvalidArgument, "owner_id")),
    "negative page size": (
        pb.ListEntitiesRequest(owner_id=str(OWNER), page_size=-1),
        Failure(InvalidArgument, "page_size"),
    ),
    "page size above 100": (
        pb.ListEntitiesRequest(owner_id=str(OWNER), page_size=101),
        Failure(InvalidArgument, "page_size"),
    ),
    "garbage token": (
        pb.ListEntitiesRequest(owner_id=str(OWNER), page_token="%%%"),
        Failure(InvalidArgument, "page_token"),
    ),
    "base64 but not a token": (
        pb.ListEntitiesRequest(owner_id=str(OWNER), page_token="aGVsbG8="),
        Failure(InvalidArgument, "page_token"),
    ),
    "a token with a byte appended": (
        pb.ListEntitiesRequest(
            owner_id=str(OWNER),
            page_token=encode_page_token(OWNER, PageCursor(datetime.now(UTC), MISSING)) + "AA",
        ),
        Failure(InvalidArgument, "page_token"),
    ),
    "token of another owner": (
        pb.ListEntitiesRequest(
            owner_id=str(OWNER),
            page_token=encode_page_token(OTHER_OWNER, PageCursor(datetime.now(UTC), MISSING)),
        ),
        Failure(InvalidArgument, "page_token"),
    ),
}


@pytest.mark.parametrize(("request_", "failure"), LIST_FAILURES.values(), ids=LIST_FAILURES.keys())
async def test_list_entities_rejects(
    repository: InMemoryEntityRepository, request_: pb.ListEntitiesRequest, failure: Failure
) -> None:
    await expect_failure(list_entities(request_, repository), failure)


@pytest.mark.parametrize(("count", "page_size"), [(0, 2), (1, 2), (2, 2), (5, 2), (3, 0)])
async def test_list_entities_pages_through_everything_once_in_order(
    repository: InMemoryEntityRepository, count: int, page_size: int
) -> None:
    created = [await stored(repository) for _ in range(count)]
    await stored(repository, OTHER_OWNER)
    seen: list[pb.Entity] = []
    token = ""
    for _ in range(count + 2):
        page = await list_entities(
            pb.ListEntitiesRequest(owner_id=str(OWNER), page_size=page_size, page_token=token),
            repository,
        )
        assert len(page.entities) <= (page_size or 50)
        seen.extend(page.entities)
        token = page.next_page_token
        if not token:
            break
    assert [e.id for e in seen] == [e.id for e in created]


# ---------------------------------------------------------------- storage failure

STORAGE_CALLS: dict[str, Callable[[InMemoryEntityRepository], Awaitable[Any]]] = {
    "create": lambda r: create_entity(
        pb.CreateEntityRequest(owner_id=str(OWNER), name="a"), r, InMemoryOwners()
    ),
    "get": lambda r: get_entity(pb.GetEntityRequest(owner_id=str(OWNER), id=str(MISSING)), r),
    "list": lambda r: list_entities(pb.ListEntitiesRequest(owner_id=str(OWNER)), r),
    "update": lambda r: update_entity(
        pb.UpdateEntityRequest(owner_id=str(OWNER), id=str(MISSING), name="n"), r
    ),
    "delete": lambda r: delete_entity(
        pb.DeleteEntityRequest(owner_id=str(OWNER), id=str(MISSING)), r
    ),
}


@pytest.mark.parametrize("call", STORAGE_CALLS.values(), ids=STORAGE_CALLS.keys())
async def test_storage_failure_is_unavailable(
    repository: InMemoryEntityRepository,
    call: Callable[[InMemoryEntityRepository], Awaitable[Any]],
) -> None:
    repository.unavailable = True
    await expect_failure(call(repository), Failure(StorageUnavailable))
