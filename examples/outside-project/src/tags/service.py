"""The tags service process: settings (TAGS_*), its servicer, and servicekit's runner."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from importlib.resources import files
from typing import TYPE_CHECKING

import asyncpg
from pydantic_settings import SettingsConfigDict

from servicekit.runner import ServiceDefinition
from servicekit.runner import main as run_main
from servicekit.server import ServiceRegistration
from servicekit.settings import ServiceSettings
from tags import normalize
from tags.v1 import tags_pb2, tags_pb2_grpc

if TYPE_CHECKING:
    from servicekit.server import Context


class TagsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TAGS_", frozen=True, extra="ignore")


class TagsServicer(tags_pb2_grpc.TagsServiceServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def Normalize(
        self, request: tags_pb2.NormalizeRequest, context: Context
    ) -> tags_pb2.NormalizeResponse:
        tags = normalize(request.tags)
        await self._pool.executemany(
            "INSERT INTO tag_uses (tag, uses) VALUES ($1, 1) "
            "ON CONFLICT (tag) DO UPDATE SET uses = tag_uses.uses + 1",
            [(tag,) for tag in tags],
        )
        return tags_pb2.NormalizeResponse(tags=tags)


def build(
    pool: asyncpg.Pool, settings: TagsSettings, resources: AsyncExitStack
) -> Sequence[ServiceRegistration]:
    servicer = TagsServicer(pool)
    return [
        ServiceRegistration(
            full_name=tags_pb2.DESCRIPTOR.services_by_name["TagsService"].full_name,
            add_to_server=lambda server: tags_pb2_grpc.add_TagsServiceServicer_to_server(
                servicer, server
            ),
        )
    ]


DEFINITION = ServiceDefinition[TagsSettings](
    name="tags", migrations=files("tags") / "migrations", build=build
)


def main() -> None:
    run_main(DEFINITION, TagsSettings)
