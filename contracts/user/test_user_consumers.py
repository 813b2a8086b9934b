"""What the user service's consumers rely on (contracts/user/consumers/*.json, recorded
from their tests' mocks with --harness-interactions=record), replayed against the user
service on the contract target after setting up each state through the handlers here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness import ProviderStates, Recorded
from user.v1 import user_pb2 as pb

if TYPE_CHECKING:
    from user.v1.user_pb2_grpc import UserServiceAsyncStub as UserServiceStub

states = ProviderStates(Path(__file__).parent)


@states.state("a user exists")
async def a_user_exists(
    stub: UserServiceStub, id: str, email: str = "someone@example.com", name: str = ""
) -> dict[str, str]:
    created = await stub.CreateUser(pb.CreateUserRequest(email=email, name=name))
    return {"id": created.user.id}


@pytest.mark.parametrize("recorded", states.recorded(), ids=str)
async def test_what_consumers_rely_on(user_stub: UserServiceStub, recorded: Recorded) -> None:
    await states.verify(recorded, user_stub)
