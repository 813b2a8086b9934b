"""What the gateway's unit tests share: the test user, the session auth returns,
the ``Gateway`` under test (app over httpx, gRPC mocks of auth, user and dummy) and
protobuf builders. The fixtures that build it are in conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from google.protobuf.timestamp_pb2 import Timestamp

from auth import auth_pb2
from dummy import dummy_pb2
from gateway.settings import GatewaySettings
from harness import GrpcMock
from user import user_pb2

if TYPE_CHECKING:
    from auth.v1.auth_pb2_grpc import AuthServiceAsyncStub
    from dummy.v1.dummy_pb2_grpc import DummyServiceAsyncStub
    from user.v1.user_pb2_grpc import UserServiceAsyncStub


USER_ID = "0b9f3c52-0a43-4d47-9d2e-0c8e8e2f6a11"
TOKEN = "sid.secret"


def session(user_id: str = USER_ID, expire_seconds: int = 7 * 24 * 3600) -> auth_pb2.Session:
    expire = Timestamp()
    expire.GetCurrentTime()
    expire.seconds += expire_seconds
    return auth_pb2.Session(id="sid", user_id=user_id, expire_time=expire)


@dataclass
class Gateway:
    http: httpx.AsyncClient
    auth: GrpcMock[AuthServiceAsyncStub]
    user: GrpcMock[UserServiceAsyncStub]
    dummy: GrpcMock[DummyServiceAsyncStub]
    settings: GatewaySettings

    def logged_in(self, user_id: str = USER_ID, *, refreshed: bool = False) -> None:
        """Program auth to accept the session cookie, and send it."""
        self.auth.when(lambda s: s.ValidateSession).returns(
            auth_pb2.ValidateSessionResponse(session=session(user_id), refreshed=refreshed)
        )
        self.http.cookies.set(self.settings.session_cookie_name, TOKEN)


GatewayFactory = Callable[..., AbstractAsyncContextManager[Gateway]]


ENTITY_ID = "7a1d4d1e-3a57-4f5e-9d2f-5b1f0a0c9e21"
OTHER_USER = "3c0f8f34-54a4-4b1c-8a33-2b0a2e9f4d10"


def entity_pb(entity_id: str = ENTITY_ID, name: str = "first") -> dummy_pb2.Entity:
    now = Timestamp()
    now.GetCurrentTime()
    return dummy_pb2.Entity(
        id=entity_id, owner_id=USER_ID, name=name, description="", create_time=now, update_time=now
    )


def user_pb(user_id: str = USER_ID, email: str = "ann@example.com") -> user_pb2.User:
    return user_pb2.User(id=user_id, email=email, name="Ann")
