"""The dummy service as a state machine: random sequences of create (with and without a
request_id, retried), get, list (every page, and forged page tokens), delete, and a
create retried while its entity is deleted (it returns the entity or, once deleted,
FAILED_PRECONDITION: a request_id stays spent), checked against a model of one owner's
entities. Every answer must also be a code the RPC's contract declares.

Reproducible like the contract fuzzer: ``FUZZ_SEED``, and ``FUZZ_EXAMPLES`` / 25 runs
(40 by default) of up to 25 steps each.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from uuid import UUID, uuid4, uuid5

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from contracts.fuzzing import (
    FUZZ_EXAMPLES,
    FUZZ_SEED,
    KNOWN_DEFECTS,
    LoopBridge,
    describe,
    forged_token,
    fuzz_settings,
    rpc_status_codes,
)
from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from fixtures.inprocess import NewOwner

ALLOWED = rpc_status_codes("dummy")
STEPS_PER_RUN = 25
RACING_RETRIES = 3
names = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=20)


@dataclass
class Findings:
    """Known defects met during the run (their first occurrence), by (RPC, code)."""

    known: dict[tuple[str, grpc.StatusCode], str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stored:
    name: str
    description: str


class UndeclaredStatus(AssertionError):
    pass


def machine_for(
    stub: dummy_pb2_grpc.DummyServiceAsyncStub,
    bridge: LoopBridge,
    owner_id: str,
    findings: Findings,
) -> type[RuleBasedStateMachine]:
    """A machine class bound to the service under test and one owner (of a fresh
    database: the owner's entities left by earlier runs are deleted at each start)."""

    async def answer(rpc: str, request: Message) -> tuple[grpc.StatusCode, object]:
        """The answer of ``rpc``; the call is made here, on the loop of the channel."""
        try:
            return grpc.StatusCode.OK, await getattr(stub, rpc)(request, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code(), f"{error.details()} ({rpc}({describe(request)}))"

    def checked(rpc: str, outcome: tuple[grpc.StatusCode, object]) -> grpc.StatusCode | None:
        """The code, or None for a known defect (recorded): the step then tells nothing."""
        code, result = outcome
        if code in ALLOWED[rpc]:
            return code
        if (rpc, code) in KNOWN_DEFECTS:
            findings.known.setdefault((rpc, code), f"{rpc} -> {code.name}: {result}")
            return None
        raise UndeclaredStatus(
            f"{rpc} -> {code.name}: {result}; the contract declares "
            f"{sorted(c.name for c in ALLOWED[rpc])} (FUZZ_SEED={FUZZ_SEED})"
        )

    def call(rpc: str, request: Message) -> tuple[grpc.StatusCode, object]:
        return bridge.run(answer(rpc, request))

    def list_all(page_size: int) -> tuple[list[str], list[str]]:
        """Every page in order: the ids and the page tokens returned."""
        ids: list[str] = []
        tokens: list[str] = []
        token = ""
        while True:
            request = dummy_pb2.ListEntitiesRequest(
                owner_id=owner_id, page_size=page_size, page_token=token
            )
            code, page = call("ListEntities", request)
            assert code == grpc.StatusCode.OK, f"ListEntities -> {code.name}: {page}"
            assert isinstance(page, dummy_pb2.ListEntitiesResponse)
            ids += [entity.id for entity in page.entities]
            token = page.next_page_token
            if not token:
                return ids, tokens
            tokens.append(token)
            assert len(ids) < 1000, "paging does not end"

    class DummyMachine(RuleBasedStateMachine):
        entities = Bundle("entities")
        request_ids = Bundle("request_ids")
        page_tokens = Bundle("page_tokens")

        def __init__(self) -> None:
            super().__init__()
            for entity_id in list_all(100)[0]:
                call("DeleteEntity", dummy_pb2.DeleteEntityRequest(owner_id=owner_id, id=entity_id))
            self.model: dict[str, Stored] = {}
            self.created_by: dict[str, str] = {}  # request_id -> entity id
            self.run = uuid4()
            self.order: list[str] = []  # ids in creation order

        def create(self, name: str, description: str, request_id: str) -> str | None:
            request = dummy_pb2.CreateEntityRequest(
                owner_id=owner_id, name=name, description=description, request_id=request_id
            )
            code, result = call("CreateEntity", request)
            checked("CreateEntity", (code, result))
            first = self.created_by.get(request_id) if request_id else None
            if first is not None and first not in self.model:
                assert code is grpc.StatusCode.FAILED_PRECONDITION, (
                    f"a retry after its entity was deleted -> {code.name}: {result}"
                )
                return None
            if code is not grpc.StatusCode.OK:
                return None
            assert isinstance(result, dummy_pb2.CreateEntityResponse)
            entity = result.entity
            if first is not None:
                assert entity.id == first, "a retry returns the entity created the first time"
                assert self.model[first] == Stored(entity.name, entity.description)
                return first
            assert entity.id not in self.model
            self.model[entity.id] = Stored(entity.name, entity.description)
            self.order.append(entity.id)
            if request_id:
                self.created_by[request_id] = entity.id
            return entity.id

        @rule(target=entities, name=names, description=names | st.just(""))
        def create_without_request_id(self, name: str, description: str) -> str:
            created = self.create(name, description, "")
            assert created is not None, "a valid create succeeds"
            return created

        @rule(target=request_ids, drawn=st.uuids(), name=names)
        def create_with_request_id(self, drawn: UUID, name: str) -> str:
            # Request ids stay spent across runs (the service keeps them after a delete):
            # each run gets its own, from what Hypothesis drew. It draws a UUID again now and
            # then: that step is a retry (create checks it).
            request_id = str(uuid5(self.run, drawn.hex))
            fresh = request_id not in self.created_by
            created = self.create(name, "", request_id)
            assert created is not None or not fresh, "a valid create succeeds"
            return request_id

        @rule(request_id=request_ids, name=names)
        def retry_create(self, request_id: str, name: str) -> None:
            self.create(name, "", request_id)

        @rule(request_id=request_ids, name=names)
        def retry_create_while_deleting(self, request_id: str, name: str) -> None:
            """Retries of a create race the delete of what it created (three retries: the
            window between a retry's insert and its read is narrow)."""
            entity_id = self.created_by[request_id]
            create = dummy_pb2.CreateEntityRequest(
                owner_id=owner_id, name=name, request_id=request_id
            )
            delete = dummy_pb2.DeleteEntityRequest(owner_id=owner_id, id=entity_id)

            async def race() -> list[tuple[grpc.StatusCode, object]]:
                retries = [answer("CreateEntity", create) for _ in range(RACING_RETRIES)]
                return await asyncio.gather(answer("DeleteEntity", delete), *retries)

            deleted, *created = bridge.run(race())
            checked("DeleteEntity", deleted)
            self.model.pop(entity_id, None)
            if entity_id in self.order:
                self.order.remove(entity_id)
            for code, result in created:
                checked("CreateEntity", (code, result))
                # before the delete: the entity; after it: the key is spent
                if code is grpc.StatusCode.OK:
                    assert isinstance(result, dummy_pb2.CreateEntityResponse)
                    assert result.entity.id == entity_id, "a racing retry created an entity"
                else:
                    assert code is grpc.StatusCode.FAILED_PRECONDITION, (
                        f"a retry racing the delete of its entity -> {code.name}: {result}"
                    )

        @rule(entity_id=entities)
        def get(self, entity_id: str) -> None:
            code, result = call(
                "GetEntity", dummy_pb2.GetEntityRequest(owner_id=owner_id, id=entity_id)
            )
            checked("GetEntity", (code, result))
            if entity_id in self.model:
                assert code is grpc.StatusCode.OK, f"GetEntity of a stored entity -> {code.name}"
                assert isinstance(result, dummy_pb2.GetEntityResponse)
                got = Stored(result.entity.name, result.entity.description)
                assert got == self.model[entity_id]
            else:
                assert code is grpc.StatusCode.NOT_FOUND, f"GetEntity of a deleted one -> {code}"

        @rule(entity_id=consumes(entities))
        def delete(self, entity_id: str) -> None:
            code, result = call(
                "DeleteEntity", dummy_pb2.DeleteEntityRequest(owner_id=owner_id, id=entity_id)
            )
            checked("DeleteEntity", (code, result))
            expected = grpc.StatusCode.OK if entity_id in self.model else grpc.StatusCode.NOT_FOUND
            assert code is expected, f"DeleteEntity -> {code.name}, expected {expected.name}"
            self.model.pop(entity_id, None)
            if entity_id in self.order:
                self.order.remove(entity_id)

        @rule(target=page_tokens, page_size=st.integers(1, 4))
        def list_every_page(self, page_size: int) -> MultipleResults[str]:
            ids, tokens = list_all(page_size)
            assert ids == self.order, "every entity once, oldest first"
            return multiple(*tokens)

        @rule(token=page_tokens)
        def list_from_a_kept_token(self, token: str) -> None:
            """A token stays usable after its entity is deleted: the next page follows."""
            request = dummy_pb2.ListEntitiesRequest(
                owner_id=owner_id, page_size=2, page_token=token
            )
            code, result = call("ListEntities", request)
            if checked("ListEntities", (code, result)) is not None:
                assert code is grpc.StatusCode.OK, f"ListEntities of a real token -> {code.name}"

        @precondition(lambda self: len(self.order) >= 2)
        @rule(data=st.data())
        def list_with_a_forged_token(self, data: st.DataObject) -> None:
            first = dummy_pb2.ListEntitiesRequest(owner_id=owner_id, page_size=1)
            code, page = call("ListEntities", first)
            assert isinstance(page, dummy_pb2.ListEntitiesResponse), f"{code.name}: {page}"
            forged = data.draw(forged_token(page.next_page_token))
            request = dummy_pb2.ListEntitiesRequest(
                owner_id=owner_id, page_size=2, page_token=forged
            )
            checked("ListEntities", call("ListEntities", request))

        @invariant()
        def the_owner_has_what_the_model_has(self) -> None:
            assert list_all(100)[0] == self.order

    return DummyMachine


async def test_the_dummy_service_behaves_as_its_model(
    dummy_stub: dummy_pb2_grpc.DummyServiceAsyncStub, new_owner: NewOwner
) -> None:
    stub = dummy_stub
    owner_id = await new_owner()
    findings = Findings()
    machine = machine_for(stub, LoopBridge(asyncio.get_running_loop()), owner_id, findings)
    settings = fuzz_settings(max_examples=max(FUZZ_EXAMPLES // STEPS_PER_RUN, 1))
    settings = type(settings)(settings, stateful_step_count=STEPS_PER_RUN)

    seeded = seed(FUZZ_SEED)(machine)  # run_state_machine_as_test reads the class's seed
    await asyncio.to_thread(run_state_machine_as_test, seeded, settings=settings)
    if findings.known:
        pytest.xfail(
            "known defects found: "
            + "; ".join(f"{KNOWN_DEFECTS[key]}: {text}" for key, text in findings.known.items())
        )
