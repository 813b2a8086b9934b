"""Configuration of the user service, from USER_* environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings


class UserSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="USER_", frozen=True, extra="ignore")
