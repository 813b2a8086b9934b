"""Tests of every repository query, on real PostgreSQL and on the in-memory fake alike.

Each repository test runs twice: against PostgresEntityRepository on a pool of a
freshly migrated, empty ``dummy`` database (from the harness) and against
InMemoryEntityRepository, so the fake every unit test relies on is held to what
the database really does. The tests at the end run on PostgreSQL only: they check
what only the database can do (ties in the page order, CHECK constraints).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from importlib.resources import files
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

import asyncpg
import pytest

from dummy.domain import (
    DESCRIPTION_MAX_LENGTH,
    NAME_MAX_LENGTH,
    Entity,
    EntityChanges,
    NewEntity,
    PageCursor,
    valid_description,
    valid_name,
)
from dummy.errors import CreatedEntityDeleted
from dummy.repository import EntityRepository, InMemoryEntityRepository, PostgresEntityRepository
from dummy.rpc.page_token import EARLIEST, LATEST
from fixtures.factories import NewEntityFactory
from servicekit.errors import InvalidArgument
from servicekit.migrations import apply_migrations, load_migrations

if TYPE_CHECKING:
    from harness import PostgresServer

OWNER = UUID("00000000-0000-4000-8000-000000000001")
OTHER_OWNER = UUID("00000000-0000-4000-8000-000000000002")
REQUEST = UUID("00000000-0000-4000-8000-0000000000aa")
MISSING = UUID("00000000-0000-4000-8000-00000000dead")


@pytest.fixture
def dummy_pool(service_pools: dict[str, asyncpg.Pool], clean_service_state: None) -> asyncpg.Pool:
    """A pool on the empty, migrated ``dummy`` database."""
    return service_pools["dummy"]


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.integration), "in-memory"])
def repository(request: pytest.FixtureRequest) -> EntityRepository:
    if request.param == "postgres":
        pool: asyncpg.Pool = request.getfixturevalue("dummy_pool")
        return PostgresEntityRepository(pool)
    return InMemoryEntityRepository()


def new_entity(
    name: str = "first",
    description: str = "",
    owner: UUID = OWNER,
    request_id: UUID | None = None,
) -> NewEntity:
    return NewEntityFactory.build(
        owner_id=owner, name=name, description=description, request_id=request_id
    )


async def create_many(
    repository: EntityRepository, count: int, owner: UUID = OWNER
) -> list[Entity]:
    """``count`` entities of ``owner``, in the order a listing returns them."""
    created = [await repository.create(new_entity(f"e{i}", owner=owner)) for i in range(count)]
    # Two creates may fall on one clock tick: the id then decides the order.
    return sorted(created, key=lambda e: (e.created_at, e.id))


def until_clock_passes(moment: datetime) -> None:
    """Spin until the clock reads later than ``moment`` (a microsecond at most), so that a
    timestamp taken next differs from it. The database runs on this host, on this clock."""
    while datetime.now(UTC) <= moment:
        pass


# ---------------------------------------------------------------- create and get


async def test_create_then_get(repository: EntityRepository) -> None:
    created = await repository.create(new_entity("lamp", "a desk lamp"))
    assert (created.owner_id, created.name, created.description) == (OWNER, "lamp", "a desk lamp")
    assert created.created_at.tzinfo is not None
    assert created.updated_at == created.created_at
    assert await repository.get(OWNER, created.id) == created


async def test_a_new_entity_was_updated_when_it_was_created(
    repository: EntityRepository,
) -> None:
    # One clock reading per create: two readings fell a microsecond apart now and then.
    created = await create_many(repository, 100)
    assert [e.updated_at for e in created] == [e.created_at for e in created]


async def test_create_gives_each_entity_its_own_id(repository: EntityRepository) -> None:
    first = await repository.create(new_entity("same"))
    second = await repository.create(new_entity("same"))
    assert first.id != second.id
    assert await repository.get(OWNER, first.id) == first
    assert await repository.get(OWNER, second.id) == second


async def test_get_unknown_is_none(repository: EntityRepository) -> None:
    await repository.create(new_entity())
    assert await repository.get(OWNER, MISSING) is None


async def test_get_by_another_owner_is_none(repository: EntityRepository) -> None:
    created = await repository.create(new_entity())
    assert await repository.get(OTHER_OWNER, created.id) is None
    assert await repository.get(OWNER, created.id) == created


# ---------------------------------------------------------------- idempotent create


async def test_create_again_with_a_request_id_returns_the_stored_entity(
    repository: EntityRepository,
) -> None:
    first = await repository.create(new_entity("first", request_id=REQUEST))
    again = await repository.create(new_entity("retry", "other", request_id=REQUEST))
    assert again == first
    page = await repository.list(OWNER, None, 10)
    assert page.entities == [first]


async def test_one_request_id_of_two_owners_creates_two_entities(
    repository: EntityRepository,
) -> None:
    mine = await repository.create(new_entity("mine", request_id=REQUEST))
    theirs = await repository.create(new_entity("theirs", owner=OTHER_OWNER, request_id=REQUEST))
    assert theirs.id != mine.id
    assert (theirs.owner_id, theirs.name) == (OTHER_OWNER, "theirs")
    assert await repository.get(OWNER, mine.id) == mine
    assert await repository.get(OTHER_OWNER, theirs.id) == theirs


async def test_creates_without_request_id_are_never_merged(repository: EntityRepository) -> None:
    first = await repository.create(new_entity("same"))
    second = await repository.create(new_entity("same"))
    assert first.id != second.id
    assert len((await repository.list(OWNER, None, 10)).entities) == 2


async def test_request_id_of_a_deleted_entity_stays_spent(repository: EntityRepository) -> None:
    first = await repository.create(new_entity("first", request_id=REQUEST))
    assert await repository.delete(OWNER, first.id)
    with pytest.raises(CreatedEntityDeleted) as refused:
        await repository.create(new_entity("again", request_id=REQUEST))
    assert refused.value.entity_id == first.id
    assert f"request_id {REQUEST} already created entity {first.id}" in refused.value.message
    assert (await repository.list(OWNER, None, 10)).entities == []
    # the key is spent for this owner only
    theirs = await repository.create(new_entity("theirs", owner=OTHER_OWNER, request_id=REQUEST))
    assert theirs.owner_id == OTHER_OWNER


RACES = 100


async def test_a_retry_racing_the_delete_of_its_entity_answers_one_way_or_the_other(
    repository: EntityRepository,
) -> None:
    """Issue 10, defect 2: each retry runs concurrently with the delete of the entity its
    key created. It returns that entity (it ran first) or CreatedEntityDeleted (it ran
    after), never another error and never a new entity."""
    requests = [uuid4() for _ in range(RACES)]
    firsts = [
        await repository.create(new_entity(f"e{i}", request_id=r)) for i, r in enumerate(requests)
    ]

    async def race(first: Entity, request_id: UUID) -> tuple[object, object]:
        retry = repository.create(new_entity("retry", request_id=request_id))
        delete = repository.delete(OWNER, first.id)
        return await asyncio.gather(retry, delete, return_exceptions=True)

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(race(f, r) for f, r in zip(firsts, requests, strict=True))), timeout=60
    )
    for first, (retried, deleted) in zip(firsts, outcomes, strict=True):
        assert deleted is True
        if isinstance(retried, CreatedEntityDeleted):
            assert retried.entity_id == first.id
        else:
            assert retried == first, f"a retry answered {retried!r}"
    assert (await repository.list(OWNER, None, 10)).entities == [], "no entity came back"


# ---------------------------------------------------------------- list


async def test_list_of_an_owner_without_entities_is_empty(repository: EntityRepository) -> None:
    await create_many(repository, 2, owner=OTHER_OWNER)
    page = await repository.list(OWNER, None, 10)
    assert (page.entities, page.next_cursor) == ([], None)


async def test_list_returns_one_owners_entities_in_order(repository: EntityRepository) -> None:
    mine = await create_many(repository, 3)
    await create_many(repository, 2, owner=OTHER_OWNER)
    page = await repository.list(OWNER, None, 10)
    assert page.entities == mine
    assert page.next_cursor is None


@pytest.mark.parametrize(
    ("count", "limit", "page_sizes"),
    [(5, 2, [2, 2, 1]), (4, 2, [2, 2]), (3, 3, [3]), (3, 1, [1, 1, 1])],
    ids=["partial last page", "full last page", "one exact page", "one per page"],
)
async def test_list_pages_through_every_entity_once(
    repository: EntityRepository, count: int, limit: int, page_sizes: list[int]
) -> None:
    mine = await create_many(repository, count)
    await create_many(repository, 2, owner=OTHER_OWNER)
    seen: list[Entity] = []
    sizes: list[int] = []
    cursor: PageCursor | None = None
    while True:
        page = await repository.list(OWNER, cursor, limit)
        seen.extend(page.entities)
        sizes.append(len(page.entities))
        if page.next_cursor is None:
            break
        # the cursor points at the last entity of the page
        last = page.entities[-1]
        assert page.next_cursor == PageCursor(last.created_at, last.id)
        cursor = page.next_cursor
    assert seen == mine
    assert sizes == page_sizes


async def test_list_after_a_deleted_entity_continues_after_it(
    repository: EntityRepository,
) -> None:
    mine = await create_many(repository, 4)
    first_page = await repository.list(OWNER, None, 2)
    assert first_page.next_cursor is not None
    assert await repository.delete(OWNER, mine[1].id)
    rest = await repository.list(OWNER, first_page.next_cursor, 2)
    assert (rest.entities, rest.next_cursor) == (mine[2:], None)


@pytest.mark.parametrize(
    ("after", "expected"),
    [(EARLIEST, "everything"), (LATEST, "nothing")],
    ids=["after the earliest instant a token holds", "after the latest instant a token holds"],
)
async def test_list_after_the_extreme_instants_of_a_page_token(
    repository: EntityRepository, after: datetime, expected: str
) -> None:
    mine = await create_many(repository, 2)
    page = await repository.list(OWNER, PageCursor(after, MISSING), 10)
    assert page.entities == (mine if expected == "everything" else [])
    assert page.next_cursor is None


# ---------------------------------------------------------------- update


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (EntityChanges(name="renamed", description=None), ("renamed", "old text")),
        (EntityChanges(name=None, description="new text"), ("old name", "new text")),
        (EntityChanges(name="renamed", description="new text"), ("renamed", "new text")),
        (EntityChanges(name=None, description=""), ("old name", "")),
    ],
    ids=["name only", "description only", "both", "description emptied"],
)
async def test_update_changes_the_given_fields(
    repository: EntityRepository, changes: EntityChanges, expected: tuple[str, str]
) -> None:
    created = await repository.create(new_entity("old name", "old text"))
    until_clock_passes(created.updated_at)
    updated = await repository.update(OWNER, created.id, changes)
    assert updated is not None
    assert (updated.name, updated.description) == expected
    assert (updated.id, updated.owner_id, updated.created_at) == (
        created.id,
        OWNER,
        created.created_at,
    )
    assert updated.updated_at > created.updated_at
    assert await repository.get(OWNER, created.id) == updated


async def test_update_of_an_unknown_entity_is_none(repository: EntityRepository) -> None:
    assert await repository.update(OWNER, MISSING, EntityChanges("x", "y")) is None


async def test_update_by_another_owner_is_none_and_changes_nothing(
    repository: EntityRepository,
) -> None:
    created = await repository.create(new_entity("mine"))
    assert await repository.update(OTHER_OWNER, created.id, EntityChanges("stolen", "")) is None
    assert await repository.get(OWNER, created.id) == created


async def test_update_keeps_the_list_order(repository: EntityRepository) -> None:
    mine = await create_many(repository, 3)
    updated = await repository.update(OWNER, mine[0].id, EntityChanges("renamed", None))
    page = await repository.list(OWNER, None, 10)
    assert page.entities == [updated, *mine[1:]]


# ---------------------------------------------------------------- delete


async def test_delete_then_delete_again(repository: EntityRepository) -> None:
    created = await repository.create(new_entity())
    assert await repository.delete(OWNER, created.id) is True
    assert await repository.get(OWNER, created.id) is None
    assert await repository.delete(OWNER, created.id) is False


async def test_delete_of_an_unknown_entity_is_false(repository: EntityRepository) -> None:
    assert await repository.delete(OWNER, MISSING) is False


async def test_delete_by_another_owner_is_false_and_keeps_the_entity(
    repository: EntityRepository,
) -> None:
    created = await repository.create(new_entity())
    assert await repository.delete(OTHER_OWNER, created.id) is False
    assert await repository.get(OWNER, created.id) == created


# ---------------------------------------------------------------- PostgreSQL only

INSERT = """
INSERT INTO entities (id, owner_id, name, description, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $5)
"""


@pytest.mark.integration
async def test_entities_created_at_one_instant_are_listed_by_id(dummy_pool: asyncpg.Pool) -> None:
    instant = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ids = [
        UUID("ffffffff-0000-4000-8000-000000000000"),
        UUID("00000000-0000-4000-8000-000000000003"),
        UUID("80000000-0000-4000-8000-000000000000"),
    ]
    for entity_id in ids:
        await dummy_pool.execute(INSERT, entity_id, OWNER, "tied", "", instant)
    repository = PostgresEntityRepository(dummy_pool)
    first = await repository.list(OWNER, None, 2)
    assert [e.id for e in first.entities] == sorted(ids)[:2]
    assert first.next_cursor == PageCursor(instant, sorted(ids)[1])
    rest = await repository.list(OWNER, first.next_cursor, 2)
    assert [e.id for e in rest.entities] == sorted(ids)[2:]
    assert rest.next_cursor is None


@pytest.mark.parametrize(
    ("name", "description"),
    [
        ("n" * (NAME_MAX_LENGTH + 1), ""),
        ("", ""),
        ("ok", "d" * (DESCRIPTION_MAX_LENGTH + 1)),
    ],
    ids=["name too long", "name empty", "description too long"],
)
@pytest.mark.integration
async def test_database_refuses_what_the_domain_refuses(
    dummy_pool: asyncpg.Pool, name: str, description: str
) -> None:
    with pytest.raises(InvalidArgument):
        valid_fields(name, description)
    with pytest.raises(asyncpg.CheckViolationError):
        await dummy_pool.execute(INSERT, MISSING, OWNER, name, description, datetime.now(UTC))
    assert await dummy_pool.fetchval("SELECT count(*) FROM entities") == 0


@pytest.mark.parametrize(
    "after",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
    ],
    ids=["year 1 +05:00 is before year 1 UTC", "year 9999 -05:00 is after 9999 UTC"],
)
@pytest.mark.integration
async def test_a_cursor_outside_the_range_is_invalid_argument_not_a_crash(
    dummy_pool: asyncpg.Pool, after: datetime
) -> None:
    """What a page token never holds (its decoder refuses it) is still refused cleanly if it
    reaches the repository: the driver cannot encode it, servicekit says INVALID_ARGUMENT."""
    repository = PostgresEntityRepository(dummy_pool)
    with pytest.raises(InvalidArgument, match="holds a value the database cannot take"):
        await repository.list(OWNER, PageCursor(after, MISSING), 10)


def valid_fields(name: str, description: str) -> tuple[str, str]:
    return valid_name(name), valid_description(description)


@pytest.mark.integration
async def test_database_accepts_the_longest_values_the_domain_accepts(
    dummy_pool: asyncpg.Pool,
) -> None:
    # characters, not bytes: "é" is two bytes in UTF-8
    name = valid_name("é" * NAME_MAX_LENGTH)
    description = valid_description("é" * DESCRIPTION_MAX_LENGTH)
    repository = PostgresEntityRepository(dummy_pool)
    created = await repository.create(new_entity(name, description))
    assert await repository.get(OWNER, created.id) == created


@pytest.mark.integration
async def test_migration_2_keeps_the_keys_of_entities_created_before_it(
    postgres_server: PostgresServer,
) -> None:
    """0002 moves request_id from the entity's row to create_requests: a retry of a create
    made before the migration still returns its entity."""
    name = f"dummy_migration_{uuid4().hex}"
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        connection = await asyncpg.connect(postgres_server.dsn(name))
        migrations = load_migrations(files("dummy") / "migrations")
        try:
            await apply_migrations(connection, [m for m in migrations if m.version == 1])
            instant = datetime(2026, 1, 2, tzinfo=UTC)
            await connection.execute(
                "INSERT INTO entities VALUES ($1, $2, 'kept', '', $3, $4, $4)",
                MISSING,
                OWNER,
                REQUEST,
                instant,
            )
            await apply_migrations(connection, migrations)
        finally:
            await connection.close()
        pool = await asyncpg.create_pool(postgres_server.dsn(name), min_size=1, max_size=1)
        try:
            retried = await PostgresEntityRepository(pool).create(
                new_entity("retry", request_id=REQUEST)
            )
        finally:
            await pool.close()
        assert (retried.id, retried.name, retried.created_at) == (MISSING, "kept", instant)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
