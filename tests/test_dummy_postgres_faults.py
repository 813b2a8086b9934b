"""Postgres restarted or crashed under concurrent writes to dummy (issue 10 defect 3).

Every answer is OK or UNAVAILABLE, never INTERNAL or UNKNOWN, whichever way asyncpg
learns that the database went (a refused connect, "terminating connection due to
administrator command", a pooled connection broken while it was idle...). An
UNAVAILABLE create says either that nothing was stored or that its outcome is unknown
and to retry with the same request_id. Through the gateway, with the write accounting:
tests/test_gateway_write_faults.py.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from typing import TYPE_CHECKING

import grpc
import pytest

from dummy.v1 import dummy_pb2 as pb
from dummy.v1 import dummy_pb2_grpc
from fixtures.factories import CreateUserRequestFactory
from harness import StackView
from user.v1 import user_pb2_grpc

if TYPE_CHECKING:
    from dummy.v1.dummy_pb2_grpc import DummyServiceAsyncStub

pytestmark = pytest.mark.stack("dummy")

WRITERS = 24
WRITING_SECONDS_BEFORE = 0.5
DOWN_SECONDS = 0.5
RECOVERY_SECONDS = 20.0  # generous: a slow machine passes, a backend that never recovers fails

# What an UNAVAILABLE create may say: nothing stored (its database, or the user service's,
# which it asks about the owner first: UNAVAILABLE there too, never INTERNAL), or an
# unknown outcome with the remedy.
NOTHING_STORED = (
    "storage is unavailable, retry later",
    "the user service could not be asked about the owner (UNAVAILABLE); retry",
)
OUTCOME_UNKNOWN = "outcome unknown; retry with the same request_id"


class Answers:
    """Codes and UNAVAILABLE messages of the creates, and when the last failure was seen."""

    def __init__(self) -> None:
        self.codes: collections.Counter[str] = collections.Counter()
        self.unavailable: collections.Counter[str] = collections.Counter()
        self.last_failure = 0.0

    def record(self, code: grpc.StatusCode, details: str) -> None:
        self.codes[code.name] += 1
        if code is grpc.StatusCode.UNAVAILABLE:
            self.unavailable[details] += 1
        if code is not grpc.StatusCode.OK:
            self.last_failure = time.monotonic()


async def write_until(
    dummy: DummyServiceAsyncStub, owner_id: str, answers: Answers, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        request = pb.CreateEntityRequest(
            owner_id=owner_id, name="load", request_id=str(uuid.uuid4())
        )
        try:
            await dummy.CreateEntity(request, timeout=10)
            answers.record(grpc.StatusCode.OK, "")
        except grpc.aio.AioRpcError as error:
            answers.record(error.code(), error.details() or "")
            await asyncio.sleep(0.02)  # a client backing off, not a busy loop


@pytest.mark.parametrize("crash", [False, True], ids=["restart", "crash"])
async def test_postgres_going_under_concurrent_writes_is_only_ever_unavailable(
    stack: StackView, crash: bool
) -> None:
    dummy = stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub)
    users = stack.stub("user", user_pb2_grpc.UserServiceStub)
    owner = (await users.CreateUser(CreateUserRequestFactory.build(), timeout=10)).user
    answers = Answers()

    async def writing(until: asyncio.Event) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(write_until(dummy, owner.id, answers, until))
            for _ in range(WRITERS)
        ]

    before = asyncio.Event()
    writers = await writing(before)
    try:
        await asyncio.sleep(WRITING_SECONDS_BEFORE)
        fault_at = time.monotonic()
        await (stack.postgres.akill() if crash else stack.postgres.astop())
        await asyncio.sleep(DOWN_SECONDS)  # the writers meet the database gone
    finally:
        before.set()
        await asyncio.gather(*writers)
    # Started again with no gRPC call of this process in flight: the harness forks the
    # server from here, and a fork while grpc's threads are busy can crash the child
    # (grpc's fork handlers are skipped then; seen as the new postgres exiting on SIGSEGV).
    await stack.postgres.astart()
    started_at = time.monotonic()
    after = asyncio.Event()
    writers = await writing(after)
    try:
        # Recovered: a second of writes after Postgres is back without any failure.
        while time.monotonic() - max(answers.last_failure, started_at) < 1.0:
            assert time.monotonic() - started_at < RECOVERY_SECONDS, answers.codes
            await asyncio.sleep(0.05)
    finally:
        after.set()
        await asyncio.gather(*writers)
    recovered_in = max(answers.last_failure, started_at) - started_at
    print(
        f"\n{'crash' if crash else 'restart'}: down {started_at - fault_at:.2f} s, "
        f"answers {dict(answers.codes)}, recovered {recovered_in:.2f} s after the start; "
        f"UNAVAILABLE said {dict(answers.unavailable)}"
    )
    assert set(answers.codes) <= {"OK", "UNAVAILABLE"}, answers.codes
    assert answers.codes["UNAVAILABLE"] > 0, "the fault was felt"
    for details in answers.unavailable:
        assert details in NOTHING_STORED or details.endswith(OUTCOME_UNKNOWN), details
