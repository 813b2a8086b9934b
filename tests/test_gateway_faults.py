"""Faults the harness injects, through the gateway: a cut link and a Postgres restart.

These are the examples of harness/README.md ("Faults"), run on the session's backend.
dummy reaches its database through a link too, so that a restart is survived across one.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from fixtures.gateway import CSRF, assert_error, oauth_login
from harness import StackView

if TYPE_CHECKING:
    from conftest import OauthProviders

pytestmark = pytest.mark.stack("gateway", links=[("gateway", "dummy"), ("dummy", "postgres")])

# Generous: a slow machine passes, a backend that never recovers fails.
RECOVERY_SECONDS = 20.0


async def logged_in(stack: StackView, providers: OauthProviders, email: str) -> httpx.AsyncClient:
    browser = stack.http("gateway", headers=CSRF, timeout=15)
    finished = await oauth_login(
        browser, "google", lambda url: providers.google.authorize(url, sub=email, email=email)
    )
    assert finished.status_code == 303, finished.text
    return browser


async def until_ok(browser: httpx.AsyncClient, path: str) -> float:
    """Ask until the answer is 200; how long that took."""
    started = time.monotonic()
    while (answer := await browser.get(path)).status_code != 200:
        assert time.monotonic() - started < RECOVERY_SECONDS, answer.text
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_cut_link_to_dummy_answers_503_until_restored(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    browser = await logged_in(stack, oauth_providers, "cut@example.com")
    assert (await browser.post("/entities", json={"name": "lamp"})).status_code == 201

    stack.link("gateway", "dummy").cut()
    assert_error(await browser.get("/entities"), 503, "unavailable")
    assert (await browser.get("/user/me")).status_code == 200  # the rest still works

    stack.link("gateway", "dummy").restore()
    await until_ok(browser, "/entities")
    assert [entity["name"] for entity in (await browser.get("/entities")).json()["entities"]] == [
        "lamp"
    ]


async def test_a_postgres_restart_is_survived(
    stack: StackView, oauth_providers: OauthProviders
) -> None:
    browser = await logged_in(stack, oauth_providers, "restart@example.com")
    assert (await browser.post("/entities", json={"name": "kept"})).status_code == 201

    # A clean shutdown (stack.postgres.akill() would crash it: with the harness's
    # asynchronous commits, the last fraction of a second of commits may be lost then).
    await stack.postgres.astop()
    assert_error(await browser.get("/entities"), 503, "unavailable")
    await stack.postgres.astart()

    recovered_in = await until_ok(browser, "/entities")
    print(f"recovered {recovered_in:.2f} s after Postgres started again")
    names = [entity["name"] for entity in (await browser.get("/entities")).json()["entities"]]
    assert names == ["kept"]
