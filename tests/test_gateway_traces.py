"""Trace propagation through the real backend: one W3C trace from the browser's request
through the gateway, every service it reaches and their databases, and every log line
of the request carrying its trace id. On the session's harness backend (CI: both)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fixtures.gateway import CSRF, oauth_login
from harness import StackView, TraceReceiver, assert_logs_carry_trace

if TYPE_CHECKING:
    import httpx

    from conftest import OauthProviders

pytestmark = pytest.mark.stack("gateway")

SERVICES = ("gateway", "auth", "user", "dummy")
VALIDATE = "/auth.v1.AuthService/ValidateSession"
CREATE = "/dummy.v1.DummyService/CreateEntity"
GET_USER = "/user.v1.UserService/GetUser"


async def logged_in(stack: StackView, providers: OauthProviders) -> httpx.AsyncClient:
    browser = stack.http("gateway", headers=CSRF, timeout=15)
    finished = await oauth_login(
        browser,
        "google",
        lambda url: providers.google.authorize(url, sub="trace-1", email="tess@example.com"),
    )
    assert finished.status_code == 303, finished.text
    return browser


def request_logs(stack: StackView) -> list[str]:
    return [line for name in SERVICES for line in stack.logs(name, 400).splitlines()]


async def test_one_trace_from_the_browser_through_every_service_to_the_databases(
    stack: StackView, oauth_providers: OauthProviders, traces: TraceReceiver
) -> None:
    browser = await logged_in(stack, oauth_providers)
    traces.clear()  # the login's own traces are not this test's
    with traces.client_span("browser: create an entity", service="browser") as call:
        created = await browser.post("/entities", json={"name": "traced"}, headers=call.headers)
    assert created.status_code == 201, created.text
    assert created.headers["x-trace-id"] == call.trace_id  # the browser's trace, continued

    trace = await traces.trace(call.trace_id)
    trace.assert_single_trace().assert_no_orphans()
    trace.assert_services(["browser", *SERVICES])
    # browser -> gateway -> auth (the session) -> auth's database
    trace.assert_path("browser: create an entity", "POST /entities", VALIDATE)
    trace.assert_rpc(VALIDATE, service="auth", code="OK")
    trace.assert_database("auth", under=VALIDATE, system="postgresql")
    # browser -> gateway -> dummy -> user (the owner exists?) -> user's database
    trace.assert_path("browser: create an entity", "POST /entities", CREATE, GET_USER)
    trace.assert_rpc(CREATE, service="dummy", code="OK")
    trace.assert_rpc(GET_USER, service="user", code="OK")
    trace.assert_database("user", under=GET_USER, system="postgresql")
    trace.assert_database("dummy", under=CREATE, system="postgresql")
    for span in trace.database_spans():  # every query belongs to the RPC of its service
        served = [a for a in trace.ancestors(span) if a.kind == "SERVER"]
        assert served, span.describe()
        assert served[0].service == span.service, span.describe()

    assert_logs_carry_trace(request_logs(stack), trace, services=SERVICES)


async def test_the_gateway_starts_the_trace_when_the_browser_sends_none(
    stack: StackView, oauth_providers: OauthProviders, traces: TraceReceiver
) -> None:
    browser = await logged_in(stack, oauth_providers)
    traces.clear()
    me = await browser.get("/user/me")
    assert me.status_code == 200
    trace = await traces.trace(me.headers["x-trace-id"])
    trace.assert_single_trace().assert_no_orphans()
    assert [root.name for root in trace.roots] == ["GET /user/me"]
    trace.assert_services(["gateway", "auth", "user"])
    trace.assert_path("GET /user/me", VALIDATE)
    trace.assert_path("GET /user/me", GET_USER)
    trace.assert_database("user", under=GET_USER)
    assert_logs_carry_trace(request_logs(stack), trace, services=["gateway", "auth", "user"])


async def test_a_failed_request_names_its_trace_and_the_trace_shows_the_failure(
    stack: StackView, oauth_providers: OauthProviders, traces: TraceReceiver
) -> None:
    browser = await logged_in(stack, oauth_providers)
    traces.clear()
    missing = await browser.get("/entities/00000000-0000-4000-8000-00000000beef")
    assert missing.status_code == 404
    trace_id = missing.json()["error"]["trace_id"]
    assert trace_id == missing.headers["x-trace-id"]
    trace = await traces.trace(trace_id)
    trace.assert_single_trace().assert_no_orphans()
    trace.assert_rpc("/dummy.v1.DummyService/GetEntity", service="dummy", code="NOT_FOUND")
    assert_logs_carry_trace(request_logs(stack), trace, services=["gateway", "dummy"])
