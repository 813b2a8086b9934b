"""What every provider's settings share (pydantic-settings, read from the environment).

A provider is configured when its client id and secret are both set; then its redirect
URI is required too. With neither, it is simply absent (and asking for it is
ProviderNotConfigured). Half a configuration is a mistake said at start-up.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProviderSettings(BaseSettings):
    """Client credentials and HTTP behaviour of one provider; subclassed per provider."""

    # hide_input_in_errors: a validation error must not print the client secret.
    model_config = SettingsConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    REQUIRED: ClassVar[tuple[str, ...]] = ("client_id", "client_secret", "redirect_uri")

    client_id: str = Field(default="", description="OAuth client id; empty: provider absent")
    client_secret: SecretStr = Field(
        default=SecretStr(""), description="OAuth client secret; empty: provider absent"
    )
    redirect_uri: str = Field(
        default="",
        description="the gateway's callback URL registered with the provider, "
        "e.g. https://example.com/auth/<provider>/callback",
    )
    timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="deadline of each HTTP call to the provider"
    )

    @classmethod
    def env_var(cls, field: str) -> str:
        """The environment variable of a field, e.g. ``AUTH_GOOGLE_CLIENT_ID``."""
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @classmethod
    def required_env_vars(cls) -> tuple[str, ...]:
        return tuple(cls.env_var(field) for field in cls.REQUIRED)

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret.get_secret_value())

    @model_validator(mode="after")
    def _complete_or_absent(self) -> Self:
        values = {
            "client_id": self.client_id,
            "client_secret": self.client_secret.get_secret_value(),
            "redirect_uri": self.redirect_uri,
        }
        if not values["client_id"] and not values["client_secret"]:
            return self
        missing = [self.env_var(field) for field, value in values.items() if not value]
        if missing:
            raise ValueError(
                f"incomplete OAuth client configuration: set {', '.join(missing)} "
                f"(or unset {self.env_var('client_id')} and {self.env_var('client_secret')} "
                "to leave the provider out)"
            )
        return self
