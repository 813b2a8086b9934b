"""The notes service process: settings (NOTES_*), its servicer, which calls the tags
service through servicekit's traced channel, and servicekit's runner."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from importlib.resources import files
from typing import TYPE_CHECKING

import asyncpg
import grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from notes.v1 import notes_pb2, notes_pb2_grpc
from servicekit.channels import service_channel
from servicekit.errors import InvalidArgument, NotFound, Unavailable
from servicekit.runner import ServiceDefinition
from servicekit.runner import main as run_main
from servicekit.server import ServiceRegistration
from servicekit.settings import ServiceSettings
from tags.v1 import tags_pb2, tags_pb2_grpc

if TYPE_CHECKING:
    from servicekit.server import Context
    from tags.v1.tags_pb2_grpc import TagsServiceAsyncStub


class NotesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTES_", frozen=True, extra="ignore")

    tags_address: str = Field(pattern=r"^[^\s:]+:\d+$", description="host:port of tags")
    tags_timeout_seconds: float = Field(default=2.0, gt=0)


class NotesServicer(notes_pb2_grpc.NotesServiceServicer):
    def __init__(self, pool: asyncpg.Pool, tags: TagsServiceAsyncStub, timeout: float) -> None:
        self._pool = pool
        self._tags = tags
        self._timeout = timeout

    async def CreateNote(
        self, request: notes_pb2.CreateNoteRequest, context: Context
    ) -> notes_pb2.CreateNoteResponse:
        text = request.text.strip()
        if not text:
            raise InvalidArgument("text", "must not be blank")
        try:
            answer = await self._tags.Normalize(
                tags_pb2.NormalizeRequest(tags=request.tags), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument("tags", error.details() or "refused") from None
            raise Unavailable(f"the tags service did not answer: {error.code().name}") from None
        tags = list(answer.tags)
        note_id = await self._pool.fetchval(
            "INSERT INTO notes (text, tags) VALUES ($1, $2) RETURNING id", text, tags
        )
        return notes_pb2.CreateNoteResponse(note=notes_pb2.Note(id=note_id, text=text, tags=tags))

    async def GetNote(
        self, request: notes_pb2.GetNoteRequest, context: Context
    ) -> notes_pb2.GetNoteResponse:
        row = await self._pool.fetchrow("SELECT text, tags FROM notes WHERE id = $1", request.id)
        if row is None:
            raise NotFound(f"no note {request.id}")
        note = notes_pb2.Note(id=request.id, text=row["text"], tags=row["tags"])
        return notes_pb2.GetNoteResponse(note=note)


def build(
    pool: asyncpg.Pool, settings: NotesSettings, resources: AsyncExitStack
) -> Sequence[ServiceRegistration]:
    channel = service_channel(settings.tags_address)  # carries the trace to tags
    resources.push_async_callback(channel.close, None)
    servicer = NotesServicer(
        pool, tags_pb2_grpc.TagsServiceStub(channel), settings.tags_timeout_seconds
    )
    return [
        ServiceRegistration(
            full_name=notes_pb2.DESCRIPTOR.services_by_name["NotesService"].full_name,
            add_to_server=lambda server: notes_pb2_grpc.add_NotesServiceServicer_to_server(
                servicer, server
            ),
        )
    ]


DEFINITION = ServiceDefinition[NotesSettings](
    name="notes", migrations=files("notes") / "migrations", build=build
)


def main() -> None:
    run_main(DEFINITION, NotesSettings)
