"""notes and tags booted by the harness, on the process or the docker backend: a stack of
both, tags replaced by a generated mock, and one trace across the two."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from harness import GrpcMock, StackView, TraceReceiver
from notes.v1 import notes_pb2, notes_pb2_grpc
from tags.v1 import tags_pb2

if TYPE_CHECKING:
    from tags.v1.tags_pb2_grpc import TagsServiceAsyncStub


@pytest.mark.stack("notes")  # notes, and tags which it calls
async def test_a_note_is_stored_with_its_tags_spelled_by_tags(stack: StackView) -> None:
    notes = stack.stub("notes", notes_pb2_grpc.NotesServiceStub)
    created = await notes.CreateNote(
        notes_pb2.CreateNoteRequest(text=" buy milk ", tags=["Home", "home ", "Errands"]),
        timeout=10,
    )
    assert created.note.text == "buy milk"
    assert list(created.note.tags) == ["home", "errands"]
    fetched = await notes.GetNote(notes_pb2.GetNoteRequest(id=created.note.id), timeout=10)
    assert fetched.note == created.note


@pytest.mark.stack("notes")
async def test_an_unknown_note_is_not_found(stack: StackView) -> None:
    notes = stack.stub("notes", notes_pb2_grpc.NotesServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await notes.GetNote(notes_pb2.GetNoteRequest(id=404), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.stack("notes", mocks=["tags"])
async def test_notes_keeps_what_the_mocked_tags_service_answers(stack: StackView) -> None:
    tags: GrpcMock[TagsServiceAsyncStub] = stack.mock("tags")
    tags.when(lambda s: s.Normalize).returns(tags_pb2.NormalizeResponse(tags=["from-the-mock"]))
    notes = stack.stub("notes", notes_pb2_grpc.NotesServiceStub)
    created = await notes.CreateNote(
        notes_pb2.CreateNoteRequest(text="x", tags=["Anything"]), timeout=10
    )
    assert list(created.note.tags) == ["from-the-mock"]
    tags.verify(lambda s: s.Normalize).called_once_with(
        tags_pb2.NormalizeRequest(tags=["Anything"])
    )


@pytest.mark.stack("notes", mocks=["tags"])
async def test_tags_down_makes_notes_unavailable(stack: StackView) -> None:
    tags: GrpcMock[TagsServiceAsyncStub] = stack.mock("tags")
    tags.when(lambda s: s.Normalize).fails(grpc.StatusCode.UNAVAILABLE, "down")
    notes = stack.stub("notes", notes_pb2_grpc.NotesServiceStub)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await notes.CreateNote(notes_pb2.CreateNoteRequest(text="x", tags=["a"]), timeout=10)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "the tags service did not answer" in (failed.value.details() or "")


@pytest.mark.stack("notes")
async def test_one_trace_crosses_from_the_test_through_notes_to_tags(
    stack: StackView, traces: TraceReceiver
) -> None:
    notes = stack.stub("notes", notes_pb2_grpc.NotesServiceStub)
    with traces.client_span("create a note") as call:
        await notes.CreateNote(
            notes_pb2.CreateNoteRequest(text="traced", tags=["t"]),
            metadata=call.metadata,
            timeout=10,
        )
    trace = await traces.trace(call.trace_id)
    trace.assert_single_trace().assert_no_orphans()
    trace.assert_services(["test", "notes", "tags"])
    trace.assert_path(
        "create a note", "/notes.v1.NotesService/CreateNote", "/tags.v1.TagsService/Normalize"
    )
