"""Settings every service reads from its environment (pydantic-settings).

A service subclasses :class:`ServiceSettings` and sets its own ``env_prefix``
(``DUMMY_``, ``AUTH_``...), so ``DUMMY_DATABASE_URL`` configures the dummy service.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str = Field(
        pattern=r"^postgres(ql)?://",
        description="DSN of the service's own database, postgresql://user:password@host:port/db",
    )
    grpc_host: str = Field(default="127.0.0.1", description="interface the gRPC server binds")
    grpc_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    db_pool_min_size: int = Field(default=1, ge=0)
    db_pool_max_size: int = Field(default=10, ge=1)
    db_connect_timeout_seconds: float = Field(
        default=30.0, gt=0, description="how long start-up keeps retrying the database"
    )
    db_command_timeout_seconds: float = Field(
        default=10.0, gt=0, description="deadline of one SQL statement"
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="how long SIGTERM lets in-flight calls finish"
    )
    max_connection_age_seconds: float | None = Field(
        default=None,
        gt=0,
        description="close each caller's connection gracefully once this old, so that callers "
        "resolve the name again and spread over replicas added since (Kubernetes); "
        "unset: never",
    )
    access_log: bool = Field(
        default=False,
        description="a log line per call; off: only server errors and slow calls are logged",
    )
    slow_call_seconds: float = Field(
        default=1.0, gt=0, description="a call at least this slow is always logged"
    )
