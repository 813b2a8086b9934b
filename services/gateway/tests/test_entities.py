"""The /entities routes: what each asks the dummy service, and bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from dummy import dummy_pb2
from fixtures.gateway import CSRF, assert_error

from .support import (
    ENTITY_ID,
    OTHER_USER,
    USER_ID,
    Gateway,
    entity_pb,
)

# --- entities ----------------------------------------------------------------------------


async def test_create_is_201_with_location_for_the_session_user(logged_in: Gateway) -> None:
    logged_in.dummy.when(lambda s: s.CreateEntity).returns(
        dummy_pb2.CreateEntityResponse(entity=entity_pb(name="first"))
    )
    response = await logged_in.http.post(
        "/entities", json={"name": "first", "description": "d"}, headers=CSRF
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/entities/{ENTITY_ID}"
    assert response.json()["id"] == ENTITY_ID
    logged_in.dummy.verify(lambda s: s.CreateEntity).called_once_with(
        dummy_pb2.CreateEntityRequest(owner_id=USER_ID, name="first", description="d")
    )


async def test_get_asks_for_the_session_users_entity(logged_in: Gateway) -> None:
    logged_in.dummy.when(lambda s: s.GetEntity).returns(
        dummy_pb2.GetEntityResponse(entity=entity_pb())
    )
    response = await logged_in.http.get(f"/entities/{ENTITY_ID}")
    assert response.status_code == 200
    assert response.json()["owner_id"] == USER_ID
    logged_in.dummy.verify(lambda s: s.GetEntity).called_once_with(
        dummy_pb2.GetEntityRequest(owner_id=USER_ID, id=ENTITY_ID)
    )


async def test_another_users_entity_is_404(gw: Gateway) -> None:
    gw.logged_in(OTHER_USER)
    gw.dummy.when(lambda s: s.GetEntity).fails(grpc.StatusCode.NOT_FOUND, "no such entity")
    assert_error(await gw.http.get(f"/entities/{ENTITY_ID}"), 404, "not_found")
    gw.dummy.verify(lambda s: s.GetEntity).called_once_with(
        dummy_pb2.GetEntityRequest(owner_id=OTHER_USER, id=ENTITY_ID)
    )


@pytest.mark.parametrize(
    ("query", "page_size", "page_token"),
    [("", 50, ""), ("?page_size=10&page_token=abc", 10, "abc"), ("?page_size=100", 100, "")],
    ids=["defaults", "size-and-token", "largest-page"],
)
async def test_list_passes_pagination_through(
    logged_in: Gateway, query: str, page_size: int, page_token: str
) -> None:
    logged_in.dummy.when(lambda s: s.ListEntities).returns(
        dummy_pb2.ListEntitiesResponse(entities=[entity_pb()], next_page_token="next")
    )
    response = await logged_in.http.get(f"/entities{query}")
    assert response.status_code == 200
    assert response.json()["next_page_token"] == "next"
    assert [item["id"] for item in response.json()["entities"]] == [ENTITY_ID]
    logged_in.dummy.verify(lambda s: s.ListEntities).called_once_with(
        dummy_pb2.ListEntitiesRequest(owner_id=USER_ID, page_size=page_size, page_token=page_token)
    )


@pytest.mark.parametrize(
    "query",
    ["?page_size=0", "?page_size=101", "?page_size=ten", "?page_size=-1"],
    ids=["zero", "too-large", "not-a-number", "negative"],
)
async def test_invalid_pagination_is_422(logged_in: Gateway, query: str) -> None:
    assert_error(await logged_in.http.get(f"/entities{query}"), 422, "validation_failed")
    logged_in.dummy.verify(lambda s: s.ListEntities).never_called()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "renamed"}, {"name": "renamed"}),
        ({"description": "new"}, {"description": "new"}),
        ({"description": ""}, {"description": ""}),
        ({"name": "both", "description": "set"}, {"name": "both", "description": "set"}),
    ],
    ids=["name-only", "description-only", "clear-description", "both"],
)
async def test_update_sends_only_the_fields_given(
    logged_in: Gateway, body: dict[str, str], expected: dict[str, str]
) -> None:
    logged_in.dummy.when(lambda s: s.UpdateEntity).returns(
        dummy_pb2.UpdateEntityResponse(entity=entity_pb(name="renamed"))
    )
    response = await logged_in.http.patch(f"/entities/{ENTITY_ID}", json=body, headers=CSRF)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "renamed"
    logged_in.dummy.verify(lambda s: s.UpdateEntity).called_once_with(
        dummy_pb2.UpdateEntityRequest(owner_id=USER_ID, id=ENTITY_ID, **expected)
    )


async def test_create_passes_the_idempotency_key(logged_in: Gateway) -> None:
    request_id = "9b1e2d7c-7c4f-4a8e-a3a5-0f5a3b1e2d7c"
    logged_in.dummy.when(lambda s: s.CreateEntity).returns(
        dummy_pb2.CreateEntityResponse(entity=entity_pb())
    )
    response = await logged_in.http.post(
        "/entities", json={"name": "first", "request_id": request_id}, headers=CSRF
    )
    assert response.status_code == 201
    logged_in.dummy.verify(lambda s: s.CreateEntity).called_once_with(
        dummy_pb2.CreateEntityRequest(owner_id=USER_ID, name="first", request_id=request_id)
    )


async def test_delete_is_204(logged_in: Gateway) -> None:
    logged_in.dummy.when(lambda s: s.DeleteEntity).returns(dummy_pb2.DeleteEntityResponse())
    response = await logged_in.http.delete(f"/entities/{ENTITY_ID}", headers=CSRF)
    assert response.status_code == 204
    assert response.content == b""
    logged_in.dummy.verify(lambda s: s.DeleteEntity).called_once_with(
        dummy_pb2.DeleteEntityRequest(owner_id=USER_ID, id=ENTITY_ID)
    )


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "code"),
    [
        ("POST", "/entities", b'{"name": ', 422, "validation_failed"),
        ("POST", "/entities", b'{"name": 5}', 422, "validation_failed"),
        ("POST", "/entities", b"{}", 422, "validation_failed"),
        ("POST", "/entities", b'{"name": "x", "owner_id": "someone"}', 422, "validation_failed"),
        ("POST", "/entities", b'{"name": "x", "request_id": "nope"}', 422, "validation_failed"),
        ("POST", "/entities", b'["name"]', 422, "validation_failed"),
        ("POST", "/entities", b'{"name": "\xff"}', 400, "bad_request"),
        ("POST", "/entities", b'{"name": "' + b"x" * 70_000 + b'"}', 413, "payload_too_large"),
        ("PATCH", f"/entities/{ENTITY_ID}", b"{}", 422, "validation_failed"),
        ("PATCH", "/entities/not-a-uuid", b'{"name": "x"}', 422, "validation_failed"),
        ("GET", "/entities/not-a-uuid", b"", 422, "validation_failed"),
        ("DELETE", "/entities/12345", b"", 422, "validation_failed"),
        ("PUT", f"/entities/{ENTITY_ID}", b"{}", 405, "method_not_allowed"),
        ("GET", "/nowhere", b"", 404, "not_found"),
    ],
    ids=[
        "broken-json",
        "wrong-type",
        "missing-name",
        "unknown-field",
        "bad-request-id",
        "not-an-object",
        "not-utf8",
        "oversized-body",
        "empty-update",
        "malformed-uuid-update",
        "malformed-uuid-get",
        "malformed-uuid-delete",
        "wrong-method",
        "unknown-route",
    ],
)
async def test_bad_input_is_a_clear_4xx(
    logged_in: Gateway, method: str, path: str, content: bytes, status: int, code: str
) -> None:
    headers = {"Content-Type": "application/json", **CSRF}
    response = await logged_in.http.request(method, path, content=content, headers=headers)
    assert_error(response, status, code)
    assert logged_in.dummy.all_calls() == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", f"/entities/{ENTITY_ID}", "DELETE, GET, PATCH"),
        ("DELETE", "/entities", "GET, POST"),
        # two routes match this path: /auth/dev/login (POST) and /auth/{provider}/login (GET)
        ("OPTIONS", "/auth/dev/login", "GET, POST"),
        ("PUT", "/user/me", "GET"),
    ],
    ids=["entity", "entities", "two-routes", "me"],
)
async def test_a_wrong_method_is_405_naming_every_method_of_the_path(
    logged_in: Gateway, method: str, path: str, allow: str
) -> None:
    response = await logged_in.http.request(method, path, headers=CSRF)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow
    for named in allow.split(", "):  # and each one named is taken (whatever it answers)
        assert (await logged_in.http.request(named, path, headers=CSRF)).status_code != 405


async def test_an_oversized_chunked_body_is_413(logged_in: Gateway) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    response = await logged_in.http.post(
        "/entities", content=chunks(), headers={"Content-Type": "application/json", **CSRF}
    )
    assert_error(response, 413, "payload_too_large")
