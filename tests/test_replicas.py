"""Two replicas of each gRPC service, as a Kubernetes Deployment with `replicas: 2` runs
them behind a headless Service: the state a call leaves must be good on the other
replica, whichever the next call reaches.

The stack boots auth, user and dummy twice each (on the session's backend: CI runs this
file on docker and on process). Their callers (the gateway, and dummy calling user) are
given one address for both replicas and balance over them (round robin); the test's own
channels either balance too or pin a replica (``stack.stub(..., replica=i)``). Each
replica's spans carry its instance (``auth-0``, ``auth-1``), so every test shows from the
trace that both replicas answered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
import pytest

from auth.v1 import auth_pb2, auth_pb2_grpc
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from fixtures.gateway import CSRF, assert_error, oauth_login
from harness import StackView, Trace, TraceReceiver
from user.v1 import user_pb2, user_pb2_grpc

if TYPE_CHECKING:
    from conftest import OauthProviders

pytestmark = pytest.mark.stack("gateway", replicas={"auth": 2, "user": 2, "dummy": 2})

BOTH = {"auth": ["auth-0", "auth-1"], "user": ["user-0", "user-1"], "dummy": ["dummy-0", "dummy-1"]}
TIMEOUT = 10.0
# Round robin sends each call to the next *ready* connection. A caller's channel connects
# on its first call, to every replica at once, and the calls made before the second
# connection is up all go to the first: so a caller is given rounds of calls until both
# replicas answered (a bounded number: one that never balances fails).
CALLS = 8
ROUNDS = 4


async def everything_sent(traces: TraceReceiver) -> Trace:
    """Every span the services sent since the test began (they batch: wait for quiet)."""
    return await traces.trace(None, settle=0.5)


async def until_both_answer(
    traces: TraceReceiver, service: str, rpc: str, one_round: Callable[[], Awaitable[None]]
) -> dict[str, int]:
    """Run ``one_round`` (some calls) until both replicas of ``service`` answered ``rpc``,
    at most ROUNDS times; the calls each replica answered."""
    __tracebackhide__ = True
    for _ in range(ROUNDS):
        await one_round()
        trace = await everything_sent(traces)
        answered = trace.instances(service, rpc)
        if sorted(answered) == BOTH[service]:
            return answered
    raise AssertionError(f"after {ROUNDS} rounds {rpc} answered by {answered}\n{trace.render()}")


async def new_user(stack: StackView, email: str) -> str:
    users = stack.stub("user", user_pb2_grpc.UserServiceStub)
    created = await users.CreateUser(
        user_pb2.CreateUserRequest(email=email, name="Replica Tester"), timeout=TIMEOUT
    )
    return created.user.id


def test_each_replica_has_an_address_and_the_service_one_that_names_both(
    stack: StackView,
) -> None:
    assert sorted(stack.stack.instances()) == sorted(
        ["gateway", *BOTH["auth"], *BOTH["user"], *BOTH["dummy"]]
    )
    first, second = stack.address("dummy", replica=0), stack.address("dummy", replica=1)
    assert first != second
    assert stack.address("dummy") == f"ipv4:{first},{second}"


# ------------------------------------------------------------------------------ sessions


async def test_a_session_made_on_one_auth_replica_is_valid_on_the_other_until_deleted(
    stack: StackView, traces: TraceReceiver
) -> None:
    on = [stack.stub("auth", auth_pb2_grpc.AuthServiceStub, replica=i) for i in (0, 1)]
    user_id = str(uuid.uuid4())
    created = await on[0].CreateSession(
        auth_pb2.CreateSessionRequest(user_id=user_id), timeout=TIMEOUT
    )
    checked = await on[1].ValidateSession(
        auth_pb2.ValidateSessionRequest(token=created.token), timeout=TIMEOUT
    )
    assert checked.session.user_id == user_id
    await on[1].DeleteSession(auth_pb2.DeleteSessionRequest(token=created.token), timeout=TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await on[0].ValidateSession(
            auth_pb2.ValidateSessionRequest(token=created.token), timeout=TIMEOUT
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    trace = await everything_sent(traces)
    assert trace.instances("auth", "auth.v1.AuthService/CreateSession") == {"auth-0": 1}
    assert trace.instances("auth", "auth.v1.AuthService/DeleteSession") == {"auth-1": 1}
    assert trace.instances("auth", "auth.v1.AuthService/ValidateSession") == {
        "auth-0": 1,
        "auth-1": 1,
    }


async def test_the_gateway_checks_a_login_on_both_auth_replicas_and_a_logout_on_both(
    stack: StackView, traces: TraceReceiver, oauth_providers: OauthProviders
) -> None:
    browser = stack.http("gateway", headers=CSRF, timeout=15)
    logged_in = await oauth_login(
        browser,
        "google",
        lambda url: oauth_providers.google.authorize(url, sub="g-r", email="rep@example.com"),
    )
    assert logged_in.status_code == 303, logged_in.text
    token = browser.cookies["session"]
    ids: set[str] = set()

    async def who_am_i() -> None:
        for _ in range(CALLS):
            answer = await browser.get("/user/me")
            assert answer.status_code == 200, answer.text
            ids.add(answer.json()["id"])

    await until_both_answer(traces, "auth", "auth.v1.AuthService/ValidateSession", who_am_i)
    await until_both_answer(traces, "user", "user.v1.UserService/GetUser", who_am_i)
    assert len(ids) == 1

    traces.clear()
    assert (await browser.post("/logout")).status_code == 204
    replay = stack.http("gateway", headers={**CSRF, "Cookie": f"session={token}"})

    async def replay_the_old_cookie() -> None:  # the deleted session is dead on every replica
        for _ in range(CALLS):
            assert_error(await replay.get("/user/me"), 401, "unauthenticated")

    await until_both_answer(
        traces, "auth", "auth.v1.AuthService/ValidateSession", replay_the_old_cookie
    )


# ---------------------------------------------------------------------------- pagination


async def test_a_page_token_from_one_dummy_replica_continues_on_the_other(
    stack: StackView, traces: TraceReceiver
) -> None:
    owner_id = await new_user(stack, "pages@example.com")
    on = [stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub, replica=i) for i in (0, 1)]
    names = [f"entity {i}" for i in range(7)]
    for index, name in enumerate(names):  # in order: the list is in creation order
        await on[index % 2].CreateEntity(
            dummy_pb2.CreateEntityRequest(owner_id=owner_id, name=name), timeout=TIMEOUT
        )
    pages: list[list[str]] = []
    token = ""
    for page in range(10):  # bounded: 3 pages expected, each from the other replica
        answer = await on[page % 2].ListEntities(
            dummy_pb2.ListEntitiesRequest(owner_id=owner_id, page_size=3, page_token=token),
            timeout=TIMEOUT,
        )
        pages.append([entity.name for entity in answer.entities])
        token = answer.next_page_token
        if not token:
            break
    assert pages == [names[0:3], names[3:6], names[6:7]]
    trace = await everything_sent(traces)
    assert trace.instances("dummy", "dummy.v1.DummyService/ListEntities") == {
        "dummy-0": 2,
        "dummy-1": 1,
    }
    assert trace.instances("dummy", "dummy.v1.DummyService/CreateEntity") == {
        "dummy-0": 4,
        "dummy-1": 3,
    }


async def test_dummy_spreads_its_owner_checks_over_both_user_replicas(
    stack: StackView, traces: TraceReceiver
) -> None:
    owner_id = await new_user(stack, "owner@example.com")
    dummy = stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub, replica=0)

    async def create() -> None:  # each create asks user whether the owner exists
        for _ in range(CALLS):
            await dummy.CreateEntity(
                dummy_pb2.CreateEntityRequest(owner_id=owner_id, name="checked"), timeout=TIMEOUT
            )

    await until_both_answer(traces, "user", "user.v1.UserService/GetUser", create)


async def test_pages_through_the_gateway_spread_over_the_replicas(
    stack: StackView, traces: TraceReceiver, oauth_providers: OauthProviders
) -> None:
    browser = stack.http("gateway", headers=CSRF, timeout=15)
    consent = lambda url: oauth_providers.google.authorize(  # noqa: E731
        url, sub="g-p", email="pager@example.com"
    )
    assert (await oauth_login(browser, "google", consent)).status_code == 303
    names = [f"item {i}" for i in range(CALLS)]
    for name in names:
        assert (await browser.post("/entities", json={"name": name})).status_code == 201
    traces.clear()

    async def walk_the_pages() -> None:  # one entity a page: every page another call
        seen: list[str] = []
        token = ""
        for _ in range(CALLS + 1):
            answer = await browser.get("/entities", params={"page_size": 1, "page_token": token})
            assert answer.status_code == 200, answer.text
            seen.extend(entity["name"] for entity in answer.json()["entities"])
            token = answer.json()["next_page_token"]
            if not token:
                break
        assert seen == names

    await until_both_answer(traces, "dummy", "dummy.v1.DummyService/ListEntities", walk_the_pages)


# ------------------------------------------------------------------- idempotent creates


async def test_a_create_retried_on_the_other_replica_returns_the_first_entity(
    stack: StackView, traces: TraceReceiver
) -> None:
    owner_id = await new_user(stack, "retry@example.com")
    on = [stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub, replica=i) for i in (0, 1)]
    request = dummy_pb2.CreateEntityRequest(
        owner_id=owner_id, name="once", request_id=str(uuid.uuid4())
    )
    first = await on[0].CreateEntity(request, timeout=TIMEOUT)
    retried = await on[1].CreateEntity(request, timeout=TIMEOUT)
    assert retried.entity == first.entity

    # the same new request on both replicas at once: one entity, both answer with it
    racing = dummy_pb2.CreateEntityRequest(
        owner_id=owner_id, name="raced", request_id=str(uuid.uuid4())
    )
    answers = await asyncio.gather(
        *(stub.CreateEntity(racing, timeout=TIMEOUT) for stub in on for _ in range(3))
    )
    assert len({answer.entity.id for answer in answers}) == 1
    listed = await on[0].ListEntities(
        dummy_pb2.ListEntitiesRequest(owner_id=owner_id, page_size=10), timeout=TIMEOUT
    )
    assert [entity.name for entity in listed.entities] == ["once", "raced"]
    trace = await everything_sent(traces)
    assert trace.instances("dummy", "dummy.v1.DummyService/CreateEntity") == {
        "dummy-0": 4,
        "dummy-1": 4,
    }


async def test_a_post_retried_through_the_gateway_creates_one_entity_whichever_replica(
    stack: StackView, traces: TraceReceiver, oauth_providers: OauthProviders
) -> None:
    browser = stack.http("gateway", headers=CSRF, timeout=15)
    consent = lambda url: oauth_providers.google.authorize(  # noqa: E731
        url, sub="g-i", email="idem@example.com"
    )
    assert (await oauth_login(browser, "google", consent)).status_code == 303
    body = {"name": "retried", "request_id": str(uuid.uuid4())}
    ids: set[str] = set()

    async def post_again() -> None:
        for _ in range(CALLS):
            answer = await browser.post("/entities", json=body)
            assert answer.status_code == 201, answer.text
            ids.add(answer.json()["id"])

    await until_both_answer(traces, "dummy", "dummy.v1.DummyService/CreateEntity", post_again)
    assert len(ids) == 1
    listed = (await browser.get("/entities")).json()["entities"]
    assert [entity["name"] for entity in listed] == ["retried"]


# ------------------------------------------------------------------ one replica down


async def test_when_one_user_replica_dies_the_callers_go_on_with_the_other(
    stack: StackView, traces: TraceReceiver
) -> None:
    owner_id = await new_user(stack, "survivor@example.com")
    dummy = stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub, replica=0)

    async def create() -> None:
        for _ in range(CALLS):
            await dummy.CreateEntity(
                dummy_pb2.CreateEntityRequest(owner_id=owner_id, name="checked"), timeout=TIMEOUT
            )

    await until_both_answer(traces, "user", "user.v1.UserService/GetUser", create)
    await stack.service("user", replica=1).akill()
    traces.clear()
    await create()  # every call answered: the dead replica's connection is left out
    trace = await everything_sent(traces)
    assert trace.instances("user", "user.v1.UserService/GetUser") == {"user-0": CALLS}
    assert stack.stack.faults == {"user-1": ("down",)}
