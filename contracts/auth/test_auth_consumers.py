"""What the auth service's consumers rely on (contracts/auth/consumers/*.json, recorded
from their tests' mocks with --harness-interactions=record), replayed against the auth
service on the contract target after setting up each state through the handlers here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from auth.v1 import auth_pb2 as pb
from harness import ProviderStates, Recorded

if TYPE_CHECKING:
    from auth.v1.auth_pb2_grpc import AuthServiceAsyncStub as AuthServiceStub

states = ProviderStates(Path(__file__).parent)


@states.state("a session exists")
async def a_session_exists(stub: AuthServiceStub, token: str, user_id: str) -> dict[str, str]:
    created = await stub.CreateSession(pb.CreateSessionRequest(user_id=user_id))
    return {"token": created.token}


@pytest.mark.parametrize("recorded", states.recorded(), ids=str)
async def test_what_consumers_rely_on(auth_stub: AuthServiceStub, recorded: Recorded) -> None:
    await states.verify(recorded, auth_stub)
