"""The dummy service's contract: what every implementation must do, seen through gRPC only.

The suite needs two fixtures: ``dummy_stub``, a ``DummyServiceStub`` connected to
the implementation under test over a database that is empty at the start of each
test; and ``new_owner``, an async function returning the id of a new user of the
user service the implementation asks about owners. This repository's conftest.py
provides them; so can any other runner.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from uuid import uuid4

import grpc
import pytest

from contracts.support import INVISIBLE_TEXT, REFUSED_CHARACTERS, expect_status
from dummy.v1 import dummy_pb2 as pb

if TYPE_CHECKING:
    # the stub's asyncio flavour only exists for the type checker
    from dummy.v1.dummy_pb2_grpc import DummyServiceAsyncStub as DummyServiceStub

Code = grpc.StatusCode


NewOwner = Callable[[], Awaitable[str]]


async def create(
    stub: DummyServiceStub, owner: str, name: str = "entity", **fields: str
) -> pb.Entity:
    response = await stub.CreateEntity(pb.CreateEntityRequest(owner_id=owner, name=name, **fields))
    return response.entity


async def test_create_then_get_returns_the_same_entity(
    dummy_stub: DummyServiceStub, new_owner: NewOwner
) -> None:
    owner = await new_owner()
    created = await create(dummy_stub, owner, "  padded  ", description="about it")
    assert created.name == "padded"
    assert created.description == "about it"
    assert created.owner_id == owner
    assert created.create_time == created.update_time
    fetched = await dummy_stub.GetEntity(pb.GetEntityRequest(owner_id=owner, id=created.id))
    assert fetched.entity == created


INVALID_CREATES = {
    "owner_id missing": (pb.CreateEntityRequest(name="a"), "owner_id"),
    "owner_id not a UUID": (pb.CreateEntityRequest(owner_id="42", name="a"), "owner_id"),
    "name missing": (pb.CreateEntityRequest(owner_id=str(uuid4())), "name"),
    "name blank": (pb.CreateEntityRequest(owner_id=str(uuid4()), name=" \t"), "name"),
    "name of 201 characters": (
        pb.CreateEntityRequest(owner_id=str(uuid4()), name="n" * 201),
        "name",
    ),
    "description of 2001 characters": (
        pb.CreateEntityRequest(owner_id=str(uuid4()), name="a", description="d" * 2001),
        "description",
    ),
    "request_id not a UUID": (
        pb.CreateEntityRequest(owner_id=str(uuid4()), name="a", request_id="retry-1"),
        "request_id",
    ),
}


@pytest.mark.parametrize(
    ("request_", "field"), INVALID_CREATES.values(), ids=INVALID_CREATES.keys()
)
async def test_create_rejects_invalid_fields(
    dummy_stub: DummyServiceStub, request_: pb.CreateEntityRequest, field: str
) -> None:
    await expect_status(dummy_stub.CreateEntity(request_), Code.INVALID_ARGUMENT, mentions=field)


# ---------------------------------------------------------------- the text policy

REFUSED_TEXT = {
    **{
        f"name with {case}": ("name", f"a{c}b", point)
        for case, (c, point) in REFUSED_CHARACTERS.items()
    },
    **{
        f"description with {case}": ("description", f"one{c}two", point)
        for case, (c, point) in REFUSED_CHARACTERS.items()
    },
    **{f"name of {case}": ("name", text, point) for case, (text, point) in INVISIBLE_TEXT.items()},
}


@pytest.mark.parametrize(
    ("field", "value", "mention"), REFUSED_TEXT.values(), ids=REFUSED_TEXT.keys()
)
async def test_create_and_update_refuse_text_outside_the_policy(
    dummy_stub: DummyServiceStub, new_owner: NewOwner, field: str, value: str, mention: str
) -> None:
    owner = await new_owner()
    fields = {"name": "kept", field: value}
    error = await expect_status(
        dummy_stub.CreateEntity(pb.CreateEntityRequest(owner_id=owner, **fields)),
        Code.INVALID_ARGUMENT,
        mentions=field,
    )
    assert mention in (error.details() or "")
    entity = await create(dummy_stub, owner, "kept")
    error = await expect_status(
        dummy_stub.UpdateEntity(
            pb.UpdateEntityRequest(owner_id=owner, id=entity.id, **{field: value})
        ),
        Code.INVALID_ARGUMENT,
        mentions=field,
    )
    assert mention in (error.details() or "")
    listed = await dummy_stub.ListEntities(pb.ListEntitiesRequest(owner_id=owner))
    assert list(listed.entities) == [entity]  # nothing stored or changed


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # joined by zero-width joiners
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # with a zero-width non-joiner
STORED_TEXT = {
    "decomposed accent stored composed (NFC)": ("Zoe\u0308", "Zo\xeb", "", ""),
    "emoji sequence with zero-width joiners": (FAMILY, FAMILY, "", ""),
    "Persian with a zero-width non-joiner": (PERSIAN, PERSIAN, "", ""),
    "description lines and tabs kept, CR LF stored as LF": (
        "n",
        "n",
        "one\r\n\ttwo\n",
        "one\n\ttwo",
    ),
}


@pytest.mark.parametrize(
    ("name", "stored_name", "description", "stored_description"),
    STORED_TEXT.values(),
    ids=STORED_TEXT.keys(),
)
async def test_text_inside_the_policy_is_stored_normalized(
    dummy_stub: DummyServiceStub,
    new_owner: NewOwner,
    name: str,
    stored_name: str,
    description: str,
    stored_description: str,
) -> None:
    created = await create(dummy_stub, await new_owner(), name, description=description)
    assert (created.name, created.description) == (stored_name, stored_description)


async def test_an_owner_who_is_not_a_user_is_failed_precondition(
    dummy_stub: DummyServiceStub,
) -> None:
    stranger = str(uuid4())
    error = await expect_status(
        dummy_stub.CreateEntity(pb.CreateEntityRequest(owner_id=stranger, name="mine")),
        Code.FAILED_PRECONDITION,
        mentions="owner_id",
    )
    assert stranger in (error.details() or "")
    listed = await dummy_stub.ListEntities(pb.ListEntitiesRequest(owner_id=stranger))
    assert list(listed.entities) == []  # nothing was stored


async def test_boundary_lengths_are_accepted(
    dummy_stub: DummyServiceStub, new_owner: NewOwner
) -> None:
    created = await create(dummy_stub, await new_owner(), "n" * 200, description="d" * 2000)
    assert len(created.name) == 200
    assert len(created.description) == 2000


async def test_create_with_the_same_request_id_is_idempotent(
    dummy_stub: DummyServiceStub, new_owner: NewOwner
) -> None:
    owner, request_id = await new_owner(), str(uuid4())
    first = await create(dummy_stub, owner, "once", request_id=request_id)
    retried = await create(dummy_stub, owner, "once", request_id=request_id)
    assert retried == first
    listed = await dummy_stub.ListEntities(pb.ListEntitiesRequest(owner_id=owner))
    assert [e.id for e in listed.entities] == [first.id]
    # the key is scoped to its owner: another owner's create is a new entity
    other = await create(dummy_stub, await new_owner(), "once", request_id=request_id)
    assert other.id != first.id


async def test_a_retry_after_the_entity_was_deleted_is_failed_precondition(
    dummy_stub: DummyServiceStub, new_owner: NewOwner
) -> None:
    owner, request_id = await new_owner(), str(uuid4())
    first = await create(dummy_stub, owner, "once", request_id=request_id)
    await dummy_stub.DeleteEntity(pb.DeleteEntityRequest(owner_id=owner, id=first.id))
    retry = dummy_stub.CreateEntity(
        pb.CreateEntityRequest(owner_id=owner, name="once", request_id=request_id)
    )
    await expect_status(retry, Code.FAILED_PRECONDITION, mentions=first.id)
    listed = await dummy_stub.ListEntities(pb.ListEntitiesRequest(owner_id=owner))
    assert list(listed.entities) == [], "the retry did not create the entity again"


RACING_PAIRS = 100


async def test_retries_racing_the_delete_of_their_entity_answer_one_way_or_the_other(
    dummy_stub: DummyServiceStub, new_owner: NewOwner
) -> None:
    """Each retry runs concurrently with the delete of the entity its request_id created:
    it returns that entity, or FAILED_PRECONDITION; never another code, never a new one."""
    owner = await new_owner()
    request_ids = [str(uuid4()) for _ in range(RACING_PAIRS)]
    firsts = [await create(dummy_stub, owner, "first", request_id=r) for r in request_ids]

    async def retry(request_id: str) -> tuple[Code, pb.Entity | None]:
        request = pb.CreateEntityRequest(owner_id=owner, name="retry", request_id=request_id)
        try:
            return Code.OK, (await dummy_stub.CreateEntity(request)).entity
        except grpc.aio.AioRpcError as error:
            return error.code(), None

    async def race(first: pb.Entity, request_id: str) -> tuple[Code, pb.Entity | None]:
        delete = dummy_stub.DeleteEntity(pb.DeleteEntityRequest(owner_id=owner, id=first.id))
        retried, _ = await asyncio.gather(retry(request_id), delete)
        return retried

    outcomes = await asyncio.gather(*(race(f, r) for f, r in zip(firsts, request_ids, strict=True)))
    for first, (code, entity) in zip(firsts, outcomes, strict=True):
        assert code in (Code.OK, Code.FAILED_PRECONDITION), f"a racing retry answered {code.name}"
        if code is Code.OK:
            assert entity == first
    listed = await dummy_stub.ListEntities(pb.ListEntitiesRequest(owner_id=owner))
    assert list(listed.entities) == [], "no entity came back"


TARGETING_RPCS = ["GetEntity", "UpdateEntity", "DeleteEntity"]


def targeting_request(rpc: str, owner: str, entity_id: str) -> object:
    if rpc == "GetEntity":
        return pb.GetEntityRequest(owner_id=owner, id=entity_id)
    if rpc == "UpdateEntity":
        return pb.UpdateEntityRequest(owner_id=owner, id=entity_id, name="changed")
    return pb.DeleteEntityRequest(owner_id=owner, id=entity_id)


@pytest.mark.parametrize("rpc", TARGETING_RPCS)
@pytest.mark.parametrize(
    ("owner", "entity_id", "field"),
    [
        ("", str(uuid4()), "owner_id"),
        ("x", str(uuid4()), "owner_id"),
        (str(uuid4()), "", "id"),
        (str(uuid4()), "1", "id"),
    ],
    ids=["owner_id missing", "owner_id malformed", "id missing", "id malformed"],
)
async def test_malformed_ids_are_invalid_argument(
    dummy_stub: DummyServiceStub, rpc: str, owner: str, entity_id: str, field: str
) -> None:
    call = getattr(dummy_stub, rpc)(targeting_request(rpc, owner, entity_id))
    await expect_status(call, Code.INVALID_ARGUMENT, mentions=field)


@pytest.mark.parametrize("rpc", TARGETING_RPCS)
async def test_unknown_entity_is_not_found(
    dummy_stub: DummyServiceStub, new_owner: NewOwner, rpc: str
) -> None:
    call = getattr(dummy_stub, rpc)(targeting_request(rpc, await new_owner(), str(uuid4())))
    await expect_status(call, Code.NOT_FOUND)


@pytest.mark.parametrize("rpc", TARGETING_RPCS)
async def test_another_owners_entity_is_not_found_and_untouched(
    dummy_stub: DummyServiceStub, new_owner: NewOwner, rpc: str
) -> None:
    owner = await new_owner()
    entity = await create(dummy_stub, owner, "mine")
    call = getattr(dummy_stub, rpc)(targeting_request(rpc, await new_owner(), entity.id))
    error = await expect_status(call, Code.NOT_FOUND)
    # the answer is the same as for an entity that does not exist at all
    assert "mine" not in (error.details() or "")
    unchanged = await dummy_stub.GetEntity(pb.GetEntityRequest(owner_id=owner, id=entity.id))
    assert unchanged.entity == entity


async def test_update_changes_only_the_fields_set(
    dummy_stub: DummyServiceStub, new_owner: NewOwner
) -> None:
    owner = await new_owner()
    entity = await create(dummy_stub, owner, "before", description="kept")
    renamed = (
        await dummy_stub.UpdateEntity(
            pb.UpdateEntityRequest(owner_id=owner, id=entity.id, name="after")
        )
    ).entity
    assert (renamed.name, renamed.description) == ("after", "kept")
    assert renamed.create_time == entity.create_time
    assert renamed.update_time.ToDatetime() >= entity.update_time.ToDatetime()
    cleared = (
        await dummy_stub.UpdateEntity(
            pb.UpdateEntityRequest(owner_id=owner, id=entity.id, description="")
        )
    ).entity
    assert (cleared.name, cleared.description) == ("after", "")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"description": "d" * 2001}, "description"),
    ],
    ids=["nothing set", "name empty", "name too long", "description too long"],
)
async def test_update_rejects_invalid_changes(
    dummy_stub: DummyServiceStub, new_owner: NewOwner, fields: dict[str, str], field: str
) -> None:
    owner = await new_owner()
    entity = await create(dummy_stub, owner)
    call = dummy_stub.UpdateEntity(pb.UpdateEntityRequest(owner_id=owner, id=entity.id, **fields))
    await expect_status(call, Code.INVALID_ARGUMENT, mentions=field)


async def test_delete_removes_and_a_second_delete_is_not_found(
    dummy_stub: DummyServiceStub,
    new_owner: NewOwner,
) -> None:
    owner = await new_owner()
    entity = await create(dummy_stub, owner)
    await dummy_stub.DeleteEntity(pb.DeleteEntityRequest(owner_id=owner, id=entity.id))
    await expect_status(
        dummy_stub.GetEntity(pb.GetEntityRequest(owner_id=owner, id=entity.id)), Code.NOT_FOUND
    )
    await expect_status(
        dummy_stub.DeleteEntity(pb.DeleteEntityRequest(owner_id=owner, id=entity.id)),
        Code.NOT_FOUND,
    )


async def test_list_pages_in_creation_order_without_repeats_or_gaps(
    dummy_stub: DummyServiceStub,
    new_owner: NewOwner,
) -> None:
    owner = await new_owner()
    created = [await create(dummy_stub, owner, f"e{i}") for i in range(7)]
    await create(dummy_stub, await new_owner(), "someone else's")
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await dummy_stub.ListEntities(
            pb.ListEntitiesRequest(owner_id=owner, page_size=3, page_token=token)
        )
        pages += 1
        assert len(page.entities) <= 3
        seen.extend(e.id for e in page.entities)
        token = page.next_page_token
        if not token:
            break
        assert pages < 10, "pagination does not end"
        # an entity created while paging does not disturb the pages already promised
        if pages == 1:
            created.append(await create(dummy_stub, owner, "late"))
    assert seen == [e.id for e in created]
    assert pages == 3


async def test_list_of_an_owner_without_entities_is_empty(
    dummy_stub: DummyServiceStub, new_owner: NewOwner
) -> None:
    page = await dummy_stub.ListEntities(pb.ListEntitiesRequest(owner_id=await new_owner()))
    assert list(page.entities) == []
    assert page.next_page_token == ""


async def test_list_default_page_size_is_50(
    dummy_stub: DummyServiceStub, new_owner: NewOwner
) -> None:
    owner = await new_owner()
    for i in range(51):
        await create(dummy_stub, owner, f"e{i}")
    page = await dummy_stub.ListEntities(pb.ListEntitiesRequest(owner_id=owner))
    assert len(page.entities) == 50
    assert page.next_page_token


@pytest.mark.parametrize(
    ("page_size", "page_token"),
    [(-1, ""), (101, ""), (0, "not a token"), (0, "eyJvIjogMX0=")],
    ids=["negative size", "size above 100", "garbage token", "forged token"],
)
async def test_list_rejects_bad_paging(
    dummy_stub: DummyServiceStub, new_owner: NewOwner, page_size: int, page_token: str
) -> None:
    call = dummy_stub.ListEntities(
        pb.ListEntitiesRequest(
            owner_id=await new_owner(), page_size=page_size, page_token=page_token
        )
    )
    await expect_status(call, Code.INVALID_ARGUMENT, mentions="page_")


def forged_token(owner: str, instant: str) -> str:
    """A token as forged in issue 10: base64 JSON of an earlier format, bound to the caller,
    naming an instant whose UTC time is outside years 1 to 9999."""
    payload = json.dumps({"o": owner, "t": instant, "i": str(uuid4())})
    return base64.urlsafe_b64encode(payload.encode()).decode()


# each builds a token from (a token the service returned, its owner)
TAMPERED_TOKENS: dict[str, Callable[[str, str], str]] = {
    "a character appended": lambda token, _: token + "A",
    "padding appended": lambda token, _: token + "==",
    "bytes appended after padding": lambda token, _: token + "=AAAA",
    "truncated": lambda token, _: token[:-2],
    "doubled": lambda token, _: token + token,
    "white space around": lambda token, _: f" {token} ",
    "forged with year 1 +05:00": lambda _, owner: forged_token(owner, "0001-01-01T00:00:00+05:00"),
    "forged with year 9999 -05:00": lambda _, owner: forged_token(
        owner, "9999-12-31T23:00:00-05:00"
    ),
    "forged with year 0": lambda _, owner: forged_token(owner, "0000-01-01T00:00:00+00:00"),
}


@pytest.mark.parametrize("tamper", TAMPERED_TOKENS.values(), ids=TAMPERED_TOKENS.keys())
async def test_a_tampered_or_forged_page_token_is_invalid_argument(
    dummy_stub: DummyServiceStub, new_owner: NewOwner, tamper: Callable[[str, str], str]
) -> None:
    owner = await new_owner()
    for i in range(2):
        await create(dummy_stub, owner, f"e{i}")
    first = await dummy_stub.ListEntities(pb.ListEntitiesRequest(owner_id=owner, page_size=1))
    call = dummy_stub.ListEntities(
        pb.ListEntitiesRequest(owner_id=owner, page_token=tamper(first.next_page_token, owner))
    )
    await expect_status(call, Code.INVALID_ARGUMENT, mentions="page_token")


async def test_page_token_of_another_owner_is_rejected(
    dummy_stub: DummyServiceStub, new_owner: NewOwner
) -> None:
    owner = await new_owner()
    for i in range(3):
        await create(dummy_stub, owner, f"e{i}")
    first = await dummy_stub.ListEntities(pb.ListEntitiesRequest(owner_id=owner, page_size=1))
    call = dummy_stub.ListEntities(
        pb.ListEntitiesRequest(owner_id=await new_owner(), page_token=first.next_page_token)
    )
    await expect_status(call, Code.INVALID_ARGUMENT, mentions="page_token")
