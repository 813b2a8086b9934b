"""HTTP request and response bodies (pydantic); request bodies refuse unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntityCreate(_Request):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    request_id: UUID | None = Field(
        default=None, description="idempotency key: a retry with the same one creates nothing"
    )


class EntityUpdate(_Request):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _something_to_change(self) -> EntityUpdate:
        if self.name is None and self.description is None:
            raise ValueError("set name, description or both")
        return self


class Entity(BaseModel):
    id: str
    owner_id: str
    name: str
    description: str
    create_time: datetime | None
    update_time: datetime | None


class EntityPage(BaseModel):
    entities: list[Entity]
    next_page_token: str = Field(description="empty on the last page")


class User(BaseModel):
    id: str
    email: str
    name: str
    avatar_url: str
    create_time: datetime | None


class DevLogin(_Request):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(default="", max_length=200)


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    services: dict[str, str] = Field(description="service -> SERVING or what is wrong")
