"""Configuration of the dummy service, from DUMMY_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servicekit.settings import ServiceSettings
from servicekit.targets import GrpcTarget


class DummySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DUMMY_", frozen=True, extra="ignore")

    user_address: GrpcTarget = Field(
        description="the user service (owner checks): host:port, or a gRPC target naming "
        "several replicas (ipv4:addr:port,addr:port); see servicekit.targets"
    )
    user_timeout_seconds: float = Field(
        default=2.0, gt=0, description="deadline of each call to the user service"
    )
