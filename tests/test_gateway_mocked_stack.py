"""The gateway booted alone, its three downstream services replaced by generated gRPC
mocks (on either harness backend: a container reaches the mocks in the test process).

What a team does to test its front door against states that are hard to reach with
the real services: a refreshed session, a downstream failure, a slow answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from auth.v1 import auth_pb2
from dummy.v1 import dummy_pb2
from fixtures.gateway import CSRF, assert_error, cookie_attributes, set_cookies
from harness import GrpcMock, StackView
from user.v1 import user_pb2

if TYPE_CHECKING:
    from auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from dummy.v1.dummy_pb2_grpc import DummyServiceAsyncStub
    from user.v1.user_pb2_grpc import UserServiceAsyncStub

# What the gateway got from its mocks here is its contract with each provider
# (contracts/<provider>/consumers/gateway.json, --harness-interactions).
pytestmark = [
    pytest.mark.stack("gateway", mocks=["auth", "user", "dummy"]),
    pytest.mark.consumer("gateway"),
]

USER_ID = "00000000-0000-4000-8000-0000000000ad"
TOKEN = "s3ss10n.s3cr3t"


def session(*, refreshed: bool) -> auth_pb2.ValidateSessionResponse:
    expires = Timestamp()
    expires.FromDatetime(datetime.now(UTC) + timedelta(days=7))
    return auth_pb2.ValidateSessionResponse(
        session=auth_pb2.Session(user_id=USER_ID, expire_time=expires), refreshed=refreshed
    )


def mocks(
    stack: StackView,
) -> tuple[
    GrpcMock[AuthServiceAsyncStub], GrpcMock[UserServiceAsyncStub], GrpcMock[DummyServiceAsyncStub]
]:
    return stack.mock("auth"), stack.mock("user"), stack.mock("dummy")


async def test_a_refreshed_session_reissues_the_cookie(stack: StackView) -> None:
    auth, user, _ = mocks(stack)
    auth.given("a session exists", token=TOKEN, user_id=USER_ID)
    # A session is refreshed in the last half of its lifetime, which no RPC can make one
    # reach: auth is held to answering the flag, not to refreshing a new session.
    auth.when(lambda s: s.ValidateSession).returns(
        session(refreshed=True), matchers={"refreshed": "type"}
    )
    user.given("a user exists", id=USER_ID, email="mo@example.com")
    user.when(lambda s: s.GetUser).returns(
        user_pb2.GetUserResponse(user=user_pb2.User(id=USER_ID, email="mo@example.com"))
    )
    browser = stack.http("gateway", headers=CSRF, timeout=15)
    me = await browser.get("/user/me", headers={"Cookie": f"session={TOKEN}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "mo@example.com"
    reissued = cookie_attributes(set_cookies(me)["session"])
    assert int(reissued["max-age"]) > 6 * 24 * 3600
    auth.verify(lambda s: s.ValidateSession).called_once_with(
        auth_pb2.ValidateSessionRequest(token=TOKEN)
    )
    user.verify(lambda s: s.GetUser).called_once_with(user_pb2.GetUserRequest(id=USER_ID))


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 502),
    ],
)
async def test_a_downstream_failure_is_mapped_and_never_a_500(
    stack: StackView, failure: grpc.StatusCode, status: int
) -> None:
    auth, _, dummy = mocks(stack)
    auth.given("a session exists", token=TOKEN, user_id=USER_ID)
    auth.when(lambda s: s.ValidateSession).returns(session(refreshed=False))
    # FAILED_PRECONDITION is what dummy answers for an owner that is no user: recorded as
    # the gateway's contract with dummy. The others are not: UNAVAILABLE and
    # DEADLINE_EXCEEDED are the link's, and a dummy answering INVALID_ARGUMENT to a valid
    # name, or RESOURCE_EXHAUSTED (no code CreateEntity declares), breaks its contract.
    precondition = failure is grpc.StatusCode.FAILED_PRECONDITION
    if precondition:
        dummy.given("the owner is no user", owner_id=USER_ID)
    dummy.when(lambda s: s.CreateEntity).fails(
        failure, "as the test says", breaks_contract=not precondition
    )
    browser = stack.http("gateway", headers=CSRF, timeout=15)
    answer = await browser.post(
        "/entities", json={"name": "x"}, headers={"Cookie": f"session={TOKEN}"}
    )
    assert_error(answer, status)
    dummy.verify(lambda s: s.CreateEntity).called_once_with(
        dummy_pb2.CreateEntityRequest(owner_id=USER_ID, name="x")
    )


async def test_an_entity_created_is_answered_as_dummy_made_it(stack: StackView) -> None:
    auth, _, dummy = mocks(stack)
    auth.given("a session exists", token=TOKEN, user_id=USER_ID)
    auth.when(lambda s: s.ValidateSession).returns(session(refreshed=False))
    made = Timestamp()
    made.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    entity_id = "00000000-0000-4000-8000-0000000000e1"
    dummy.given("the owner is a user", owner_id=USER_ID)
    dummy.when(lambda s: s.CreateEntity).returns(
        dummy_pb2.CreateEntityResponse(
            entity=dummy_pb2.Entity(
                id=entity_id, owner_id=USER_ID, name="x", create_time=made, update_time=made
            )
        )
    )
    browser = stack.http("gateway", headers=CSRF, timeout=15)
    answer = await browser.post(
        "/entities", json={"name": "x"}, headers={"Cookie": f"session={TOKEN}"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["id"] == entity_id
    assert answer.json()["name"] == "x"
