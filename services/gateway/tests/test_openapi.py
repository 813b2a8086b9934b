"""The OpenAPI document: every route, its errors, and which need the session."""

from __future__ import annotations

import pytest

from fixtures.gateway import CSRF, assert_error

from .support import (
    ENTITY_ID,
    Gateway,
)

ROUTES = {
    ("/auth/{provider}/login", "get"),
    ("/auth/{provider}/callback", "get"),
    ("/auth/dev/login", "post"),
    ("/user/me", "get"),
    ("/logout", "post"),
    ("/entities", "post"),
    ("/entities", "get"),
    ("/entities/{entity_id}", "get"),
    ("/entities/{entity_id}", "patch"),
    ("/entities/{entity_id}", "delete"),
    ("/healthz", "get"),
    ("/readyz", "get"),
}


async def test_the_openapi_document_lists_every_route_and_its_errors(gw: Gateway) -> None:
    document = (await gw.http.get("/openapi.json")).json()
    listed = {(path, method) for path, item in document["paths"].items() for method in item}
    assert listed == ROUTES
    error_ref = "#/components/schemas/ErrorResponse"
    for path, method in ROUTES - {("/healthz", "get"), ("/readyz", "get")}:
        responses = document["paths"][path][method]["responses"]
        assert "503" in responses, (path, method)
        schema = responses["503"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": error_ref}
    entity = document["paths"]["/entities/{entity_id}"]
    assert "404" in entity["get"]["responses"]
    assert entity["get"]["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": error_ref
    }
    assert "requestBody" in document["paths"]["/entities"]["post"]


@pytest.mark.parametrize(
    ("path", "method", "security"),
    [
        ("/user/me", "get", [{"session": []}]),
        ("/entities", "post", [{"session": [], "csrf": []}]),
        ("/entities/{entity_id}", "delete", [{"session": [], "csrf": []}]),
        ("/auth/dev/login", "post", [{"csrf": []}]),
        ("/auth/{provider}/login", "get", None),
        ("/healthz", "get", None),
    ],
    ids=["me", "create", "delete", "dev-login", "oauth-login", "healthz"],
)
async def test_the_openapi_document_says_which_routes_need_the_session_and_csrf_header(
    gw: Gateway, path: str, method: str, security: list[dict[str, list[str]]] | None
) -> None:
    document = (await gw.http.get("/openapi.json")).json()
    assert document["paths"][path][method].get("security") == security
    schemes = document["components"]["securitySchemes"]
    assert schemes["session"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "session",
        "description": "the session token, set by a login",
    }
    assert schemes["csrf"]["name"] == "X-Requested-With"


PUBLIC_ROUTES = {
    ("/auth/{provider}/login", "get"),
    ("/auth/{provider}/callback", "get"),
    ("/auth/dev/login", "post"),
    ("/healthz", "get"),
    ("/readyz", "get"),
}


@pytest.mark.parametrize(
    ("path", "method"),
    sorted(ROUTES - PUBLIC_ROUTES),
    ids=[f"{method.upper()} {path}" for path, method in sorted(ROUTES - PUBLIC_ROUTES)],
)
async def test_every_route_documented_as_needing_the_session_refuses_without_one(
    gw: Gateway, path: str, method: str
) -> None:
    document = (await gw.http.get("/openapi.json")).json()
    (requirement,) = document["paths"][path][method]["security"]
    assert "session" in requirement
    assert ("csrf" in requirement) is (method != "get")
    url = path.replace("{entity_id}", ENTITY_ID)
    response = await gw.http.request(method.upper(), url, json={"name": "x"}, headers=CSRF)
    assert_error(response, 401, "unauthenticated")
