"""Configuration of the auth service, from AUTH_* environment variables.

The OAuth providers read their own ``AUTH_GOOGLE_*`` / ``AUTH_GITHUB_*`` settings
(auth.oauth.GoogleSettings, GitHubSettings); a provider without a client id and
secret is simply not offered.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from auth.oauth import GitHubSettings, GoogleSettings
from servicekit.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", frozen=True, extra="ignore")

    # Read from their own prefixes when the service settings are read, so that a
    # half-configured provider stops start-up with the variables to set.
    google: GoogleSettings = Field(default_factory=GoogleSettings)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
