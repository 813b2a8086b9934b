"""What the dummy service's consumers rely on (contracts/dummy/consumers/*.json, recorded
from their tests' mocks with --harness-interactions=record), replayed against the dummy
service on the contract target after setting up each state through the handlers here:
an owner is a user of the user service dummy asks (``new_owner``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fixtures.inprocess import NewOwner
from harness import ProviderStates, Recorded

if TYPE_CHECKING:
    from dummy.v1.dummy_pb2_grpc import DummyServiceAsyncStub as DummyServiceStub

states = ProviderStates(Path(__file__).parent)


@states.state("the owner is a user")
async def the_owner_is_a_user(new_owner: NewOwner, owner_id: str) -> dict[str, str]:
    return {"owner_id": await new_owner()}


@states.state("the owner is no user")
async def the_owner_is_no_user(new_owner: NewOwner, owner_id: str) -> None:
    """Nothing to do: the user service dummy asks starts empty."""


@pytest.mark.parametrize("recorded", states.recorded(), ids=str)
async def test_what_consumers_rely_on(
    dummy_stub: DummyServiceStub, new_owner: NewOwner, recorded: Recorded
) -> None:
    await states.verify(recorded, dummy_stub, using=new_owner)
