"""Configuration of the auth service, from AUTH_* environment variables.

The OAuth providers read their own ``AUTH_GOOGLE_*`` / ``AUTH_GITHUB_*`` settings
(auth.oauth); a provider without a client id and secret is simply not offered.
"""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", frozen=True, extra="ignore")
