"""Configuration of the dummy service, from DUMMY_* environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings


class DummySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DUMMY_", frozen=True, extra="ignore")
