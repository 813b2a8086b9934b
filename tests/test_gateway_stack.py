"""Through the real backend: the gateway and every service it calls, on Postgres, on the
session's harness backend (docker or process; CI runs this file on both).

The gateway runs as in production (Secure cookies, no development login). Google and
GitHub are the HTTP fakes of fixtures/oauth.py, served by the harness where the auth
service reaches them: each login below is the whole OAuth code flow, one redirect at a
time, with PKCE, the id_token verified against the fake's JWKS, and GitHub's API read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from fixtures.gateway import CSRF, assert_error, cookie_attributes, oauth_login, set_cookies
from harness import StackView

if TYPE_CHECKING:
    from conftest import OauthProviders

pytestmark = pytest.mark.stack("gateway")

SESSION = "session"


def new_browser(stack: StackView) -> httpx.AsyncClient:
    return stack.http("gateway", headers=CSRF, timeout=15)


async def google_login(
    stack: StackView, providers: OauthProviders, *, sub: str, email: str, name: str = ""
) -> httpx.AsyncClient:
    """A new browser, logged in with Google as this account."""
    browser = new_browser(stack)
    claims: dict[str, Any] = {"sub": sub, "email": email}
    if name:
        claims["name"] = name
    finished = await oauth_login(
        browser, "google", lambda url: providers.google.authorize(url, **claims)
    )
    assert finished.status_code == 303, finished.text
    return browser


# ------------------------------------------------------------------------------ logins


async def test_google_login_from_redirect_to_session(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    browser = new_browser(stack)
    started = await browser.get("/auth/google/login")
    assert started.status_code == 302
    location = started.headers["location"]
    assert location.startswith(oauth_providers.google.authorization_endpoint + "?")
    oauth_cookies = set_cookies(started)
    assert set(oauth_cookies) == {"oauth_state", "oauth_verifier"}
    for header in oauth_cookies.values():  # short-lived, HttpOnly, and production flags
        attributes = cookie_attributes(header)
        assert {"httponly", "secure"} <= set(attributes)
        assert attributes["samesite"].lower() == "lax"
        assert 0 < int(attributes["max-age"]) <= 600

    code = oauth_providers.google.authorize(
        location, sub="google-ada", email="ada@example.com", name="Ada Lovelace"
    )
    params = httpx.URL(location).params
    finished = await browser.get(
        "/auth/google/callback", params={"code": code, "state": params["state"]}
    )
    assert finished.status_code == 303
    cookies = set_cookies(finished)
    session = cookie_attributes(cookies[SESSION])
    assert {"httponly", "secure"} <= set(session)
    assert session["samesite"].lower() == "lax"
    assert int(session["max-age"]) > 6 * 24 * 3600  # the session's 7 days
    for name in ("oauth_state", "oauth_verifier"):  # spent: expired
        assert cookie_attributes(cookies[name])["max-age"] == "0"

    me = await browser.get("/user/me")
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "ada@example.com"
    assert me.json()["name"] == "Ada Lovelace"


async def test_github_login_takes_the_primary_verified_email(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    github = oauth_providers.github
    github.user = {**github.user, "email": None, "name": "Grace Hopper", "id": 4242}
    github.emails = [
        {"email": "old@example.com", "primary": False, "verified": True, "visibility": None},
        {"email": "grace@example.com", "primary": True, "verified": True, "visibility": None},
    ]
    browser = new_browser(stack)
    finished = await oauth_login(browser, "github", github.authorize)
    assert finished.status_code == 303, finished.text
    me = (await browser.get("/user/me")).json()
    assert me["email"] == "grace@example.com"
    assert me["name"] == "Grace Hopper"


async def test_logging_in_again_or_with_the_other_provider_finds_the_same_user(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    first = await google_login(stack, oauth_providers, sub="g-1", email="octocat@example.com")
    again = await google_login(stack, oauth_providers, sub="g-1", email="octocat@example.com")
    via_github = new_browser(stack)  # the fake GitHub account has the same verified e-mail
    assert (
        await oauth_login(via_github, "github", oauth_providers.github.authorize)
    ).status_code == 303
    ids = {(await browser.get("/user/me")).json()["id"] for browser in (first, again, via_github)}
    assert len(ids) == 1


async def test_logout_deletes_the_session_on_the_server(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    browser = await google_login(stack, oauth_providers, sub="g-2", email="bob@example.com")
    token = browser.cookies[SESSION]
    logged_out = await browser.post("/logout")
    assert logged_out.status_code == 204
    assert cookie_attributes(set_cookies(logged_out)[SESSION])["max-age"] == "0"
    assert_error(await browser.get("/user/me"), 401, "unauthenticated")
    # the old cookie, replayed by someone who kept it, is dead too
    replay = new_browser(stack)
    assert_error(await replay.get("/user/me", headers={"Cookie": f"{SESSION}={token}"}), 401)


# ------------------------------------------------------------------------------ entities


async def test_entity_crud_through_the_gateway(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    browser = await google_login(stack, oauth_providers, sub="g-3", email="cy@example.com")
    me = (await browser.get("/user/me")).json()

    created = await browser.post("/entities", json={"name": "lamp", "description": "brass"})
    assert created.status_code == 201, created.text
    entity = created.json()
    assert created.headers["location"] == f"/entities/{entity['id']}"
    assert entity["owner_id"] == me["id"]
    assert (entity["name"], entity["description"]) == ("lamp", "brass")

    fetched = await browser.get(created.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == entity

    listed = await browser.get("/entities")
    assert [e["id"] for e in listed.json()["entities"]] == [entity["id"]]
    assert listed.json()["next_page_token"] == ""

    updated = await browser.patch(f"/entities/{entity['id']}", json={"name": "desk lamp"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["name"], updated.json()["description"]) == ("desk lamp", "brass")

    deleted = await browser.delete(f"/entities/{entity['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(await browser.get(f"/entities/{entity['id']}"), 404, "not_found")
    assert_error(await browser.delete(f"/entities/{entity['id']}"), 404, "not_found")


async def test_another_users_entity_is_not_found(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    owner = await google_login(stack, oauth_providers, sub="g-4", email="dee@example.com")
    other = await google_login(stack, oauth_providers, sub="g-5", email="eve@example.com")
    entity = (await owner.post("/entities", json={"name": "diary"})).json()
    url = f"/entities/{entity['id']}"

    assert_error(await other.get(url), 404, "not_found")
    assert_error(await other.patch(url, json={"name": "mine now"}), 404, "not_found")
    assert_error(await other.delete(url), 404, "not_found")
    assert (await other.get("/entities")).json()["entities"] == []
    # untouched for its owner
    assert (await owner.get(url)).json() == entity


async def test_pagination_walks_every_entity_once_in_creation_order(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    browser = await google_login(stack, oauth_providers, sub="g-6", email="fay@example.com")
    names = [f"entity {i}" for i in range(7)]
    for name in names:
        assert (await browser.post("/entities", json={"name": name})).status_code == 201

    pages: list[list[str]] = []
    token = ""
    for _ in range(10):  # bounded: 3 pages expected
        answer = await browser.get("/entities", params={"page_size": 3, "page_token": token})
        assert answer.status_code == 200, answer.text
        pages.append([entity["name"] for entity in answer.json()["entities"]])
        token = answer.json()["next_page_token"]
        if not token:
            break
    assert pages == [names[0:3], names[3:6], names[6:7]]


# ------------------------------------------------------------------------------ bad input

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
ENTITY = "/entities/00000000-0000-4000-8000-000000000001"

MALFORMED: list[tuple[str, Send, int, str]] = [
    # (case, request from a logged-in browser, status, error code)
    (
        "broken JSON",
        lambda b: b.post(
            "/entities", content=b'{"name": ', headers={"content-type": "application/json"}
        ),
        422,
        "validation_failed",
    ),
    (
        "JSON that is not an object",
        lambda b: b.post("/entities", json=["name"]),
        422,
        "validation_failed",
    ),
    ("wrong type", lambda b: b.post("/entities", json={"name": 42}), 422, "validation_failed"),
    (
        "unknown field",
        lambda b: b.post("/entities", json={"name": "x", "owner_id": "me"}),
        422,
        "validation_failed",
    ),
    ("empty name", lambda b: b.post("/entities", json={"name": ""}), 422, "validation_failed"),
    (
        "NUL in a name",
        lambda b: b.post("/entities", json={"name": "a\x00b"}),
        400,
        "invalid_argument",
    ),
    (
        "ESC colour sequence in a name",
        lambda b: b.post("/entities", json={"name": "\x1b[31mred\x1b[0m"}),
        400,
        "invalid_argument",
    ),
    (
        "name of zero-width characters",
        lambda b: b.post("/entities", json={"name": "\u200b\u200d"}),
        400,
        "invalid_argument",
    ),
    (
        "right-to-left override in a description",
        lambda b: b.post("/entities", json={"name": "x", "description": "abc\u202etxt.exe"}),
        400,
        "invalid_argument",
    ),
    (
        "not UTF-8",
        lambda b: b.post(
            "/entities", content=b'{"name": "\xff"}', headers={"content-type": "application/json"}
        ),
        400,
        "bad_request",
    ),
    (
        "oversized body",
        lambda b: b.post("/entities", json={"name": "x", "description": "y" * 70_000}),
        413,
        "payload_too_large",
    ),
    ("nothing to update", lambda b: b.patch(ENTITY, json={}), 422, "validation_failed"),
    ("malformed UUID", lambda b: b.get("/entities/not-a-uuid"), 422, "validation_failed"),
    ("malformed UUID on delete", lambda b: b.delete("/entities/1234"), 422, "validation_failed"),
    (
        "page size zero",
        lambda b: b.get("/entities", params={"page_size": 0}),
        422,
        "validation_failed",
    ),
    (
        "page size not a number",
        lambda b: b.get("/entities", params={"page_size": "ten"}),
        422,
        "validation_failed",
    ),
    (
        "forged page token",
        lambda b: b.get("/entities", params={"page_token": "Zm9yZ2Vk"}),
        400,
        "invalid_argument",
    ),
    ("unknown provider", lambda b: b.get("/auth/myspace/login"), 404, "unknown_provider"),
    (
        "unknown provider callback",
        lambda b: b.get("/auth/myspace/callback", params={"code": "c", "state": "s"}),
        404,
        "unknown_provider",
    ),
    (
        "no CSRF header",
        lambda b: b.post("/entities", json={"name": "x"}, headers={"X-Requested-With": ""}),
        403,
        "csrf_header_missing",
    ),
    (
        # not registered outside local: POST there is what it is at /auth/<anything>/login
        "development login in production",
        lambda b: b.post("/auth/dev/login", json={"email": "a@b.c"}),
        405,
        "method_not_allowed",
    ),
    (
        "development login in production, no CSRF header, invalid body",
        lambda b: b.post("/auth/dev/login", json={"mail": 1}, headers={"X-Requested-With": ""}),
        405,
        "method_not_allowed",
    ),
]


@pytest.mark.parametrize(
    ("send", "status", "code"),
    [pytest.param(send, status, code, id=case) for case, send, status, code in MALFORMED],
)
async def test_malformed_input_gets_a_4xx_in_the_error_shape(
    stack: StackView, oauth_providers: OauthProviders, send: Send, status: int, code: str
) -> None:
    browser = await google_login(stack, oauth_providers, sub="g-7", email="gil@example.com")
    assert_error(await send(browser), status, code)
    # nothing was lost or half-made on the way
    assert (await browser.get("/entities")).json()["entities"] == []
    assert (await browser.get("/user/me")).status_code == 200


def other_char(char: str) -> str:
    """A token character that is not ``char`` (a tampered token must differ)."""
    return "b" if char == "a" else "a"


COOKIES: list[tuple[str, Callable[[str], str], str]] = [
    ("missing", lambda token: "", "unauthenticated"),
    ("forged", lambda token: f"{SESSION}=forged.session", "unauthenticated"),
    (
        "tampered secret",
        lambda token: f"{SESSION}={token[:-1]}{other_char(token[-1])}",
        "unauthenticated",
    ),
    (
        "tampered id",
        lambda token: f"{SESSION}={other_char(token[0])}{token[1:]}",
        "unauthenticated",
    ),
    ("no separator", lambda token: f"{SESSION}={token.replace('.', '')}", "unauthenticated"),
    ("oversized", lambda token: f"{SESSION}={'a' * 3000}.{'b' * 3000}", "unauthenticated"),
    ("not ASCII", lambda token: f"{SESSION}=%C3%A9t%C3%A9.%00", "unauthenticated"),
    # a valid session beside another copy of the cookie: refused in either order
    (
        "forged then valid",
        lambda token: f"{SESSION}=forged.x; {SESSION}={token}",
        "ambiguous_session",
    ),
    (
        "valid then forged",
        lambda token: f"{SESSION}={token}; {SESSION}=forged.x",
        "ambiguous_session",
    ),
]


@pytest.mark.parametrize(
    ("cookie", "code"), [pytest.param(make, code, id=case) for case, make, code in COOKIES]
)
async def test_a_missing_forged_tampered_or_ambiguous_session_cookie_is_401(
    stack: StackView, oauth_providers: OauthProviders, cookie: Callable[[str], str], code: str
) -> None:
    browser = await google_login(stack, oauth_providers, sub="g-8", email="hal@example.com")
    header = cookie(browser.cookies[SESSION])
    stranger = new_browser(stack)
    headers = {"Cookie": header} if header else {}
    assert_error(await stranger.get("/user/me", headers=headers), 401, code)
    assert_error(await stranger.post("/entities", json={"name": "x"}, headers=headers), 401, code)
    assert (await browser.get("/user/me")).status_code == 200  # the real session still works


async def test_a_state_that_does_not_match_its_cookie_is_refused(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    browser = new_browser(stack)
    started = await browser.get("/auth/google/login")
    code = oauth_providers.google.authorize(started.headers["location"], sub="g-9")
    refused = await browser.get("/auth/google/callback", params={"code": code, "state": "forged"})
    assert_error(refused, 400)
    assert SESSION not in set_cookies(refused)
    assert_error(await browser.get("/user/me"), 401)


async def test_a_callback_without_the_login_cookies_is_refused(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    started = await new_browser(stack).get("/auth/github/login")
    state = httpx.URL(started.headers["location"]).params["state"]
    code = oauth_providers.github.authorize(started.headers["location"])
    elsewhere = new_browser(stack)  # another browser: it never started this login
    refused = await elsewhere.get("/auth/github/callback", params={"code": code, "state": state})
    assert_error(refused, 400)
    assert SESSION not in set_cookies(refused)


async def test_a_refused_consent_or_a_spent_code_is_not_a_login(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    browser = new_browser(stack)
    refused = await browser.get("/auth/google/callback", params={"error": "access_denied"})
    assert_error(refused, 403, "oauth_refused")
    started = await browser.get("/auth/google/login")
    state = httpx.URL(started.headers["location"]).params["state"]
    code = oauth_providers.google.authorize(started.headers["location"], sub="g-10")
    first = await browser.get("/auth/google/callback", params={"code": code, "state": state})
    assert first.status_code == 303
    replayed = new_browser(stack)  # the code again, with the same cookies: Google refuses
    for name in ("oauth_state", "oauth_verifier"):
        replayed.cookies.set(name, started.cookies[name])
    again = await replayed.get("/auth/google/callback", params={"code": code, "state": state})
    assert 400 <= again.status_code < 500
    assert_error(again, again.status_code)


# ------------------------------------------------------------------------------ faults


async def test_a_stopped_service_gives_503_quickly_and_the_gateway_recovers(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    browser = await google_login(stack, oauth_providers, sub="g-11", email="ivy@example.com")
    stack.stop("dummy")
    started = time.monotonic()
    assert_error(await browser.get("/entities"), 503, "unavailable")
    assert time.monotonic() - started < 5  # well inside the gateway's 5 s deadline
    assert (await browser.get("/user/me")).status_code == 200  # the rest still works
    stack.start("dummy")
    deadline = time.monotonic() + 10
    while (answer := await browser.get("/entities")).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        await asyncio.sleep(0.1)
