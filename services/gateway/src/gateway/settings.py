"""The gateway's settings, read from ``GATEWAY_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.targets import GrpcTarget

# servicekit.targets lists the forms
_TARGET = "host:port, or a gRPC target naming several replicas (ipv4:addr:port,addr:port)"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity: what a container's cpuset allows)."""
    return len(os.sched_getaffinity(0))


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", description="interface the HTTP server binds")
    port: int = Field(default=8080, ge=0, le=65535)
    auth_address: GrpcTarget = Field(default="127.0.0.1:50051", description=f"{_TARGET} of auth")
    user_address: GrpcTarget = Field(default="127.0.0.1:50052", description=f"{_TARGET} of user")
    dummy_address: GrpcTarget = Field(default="127.0.0.1:50053", description=f"{_TARGET} of dummy")
    environment: Literal["local", "production"] = Field(
        default="production",
        description="local relaxes cookie flags and enables POST /auth/dev/login",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='JSON list, e.g. ["https://app.example.com"]'
    )
    session_cookie_name: str = "session"
    public_base_url: str = Field(
        default="http://localhost:8080", description="where a finished OAuth login lands"
    )
    grpc_timeout_seconds: float = Field(default=5.0, gt=0, description="deadline of a gRPC call")
    readiness_timeout_seconds: float = Field(default=1.0, gt=0)
    oauth_cookie_max_age_seconds: int = Field(default=600, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    access_log: bool = Field(
        default=False,
        description="a log line per request; off: only 5xx answers and slow requests",
    )
    workers: int | Literal["auto"] = Field(
        default=1,
        description="HTTP worker processes on one socket; auto: one per CPU this process may use",
    )
    slow_request_seconds: float = Field(
        default=1.0, gt=0, description="a request at least this slow is always logged"
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins_as_browsers_send_them(cls, origins: list[str]) -> list[str]:
        """Browsers send ``scheme://host[:port]``, compared exactly: anything else (a path,
        a trailing slash, upper case, a wildcard) would silently never match, or match all."""
        for origin in origins:
            parts = urlsplit(origin)
            if (
                parts.scheme not in {"http", "https"}
                or not parts.hostname
                or origin != f"{parts.scheme}://{parts.netloc}"
                or origin != origin.lower()
            ):
                raise ValueError(
                    f"{origin!r} is not an origin: write it as a browser sends it, "
                    "scheme://host[:port] in lower case, without path or wildcard "
                    "(e.g. https://app.example.com)"
                )
        return origins

    @field_validator("workers")
    @classmethod
    def _at_least_one_worker(cls, workers: int | str) -> int | str:
        if isinstance(workers, int) and workers < 1:
            raise ValueError(f"{workers} workers: at least 1, or auto (one per CPU)")
        return workers

    @property
    def worker_count(self) -> int:
        return available_cpus() if self.workers == "auto" else self.workers

    @property
    def is_local(self) -> bool:
        return self.environment == "local"
