"""GatewaySettings from GATEWAY_* variables, and origins refused at start-up."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings


def test_settings_come_from_gateway_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "local")
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", '["https://app.example.com"]')
    monkeypatch.setenv("GATEWAY_DUMMY_ADDRESS", "dummy:50053")
    settings = GatewaySettings()
    assert settings.is_local
    assert settings.cors_origins == ["https://app.example.com"]
    assert settings.dummy_address == "dummy:50053"


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://App.example.com",
        "app.example.com",
        "ftp://app.example.com",
    ],
    ids=["wildcard", "trailing-slash", "path", "upper-case", "no-scheme", "other-scheme"],
)
def test_a_cors_origin_that_no_browser_sends_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, origin: str
) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", json.dumps([origin]))
    with pytest.raises(ValidationError, match="is not an origin"):
        GatewaySettings()


def test_cors_origins_with_ports_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    origins = ["http://localhost:5173", "https://app.example.com"]
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", json.dumps(origins))
    assert GatewaySettings().cors_origins == origins


def test_the_environment_defaults_to_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_ENVIRONMENT", raising=False)
    assert GatewaySettings().environment == "production"


@pytest.mark.parametrize(
    "target",
    ["auth:50051", "dns:///auth:50051", "ipv4:127.0.0.1:50051,127.0.0.1:50061"],
    ids=["host-port", "dns", "two-replicas"],
)
def test_a_service_address_may_name_several_replicas(
    monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.setenv("GATEWAY_AUTH_ADDRESS", target)
    assert GatewaySettings().auth_address == target


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("auth", "not a gRPC target"),
        ("auth:5o051", "is not a number"),
        ("127.0.0.1:50051,127.0.0.1:50061", "are written ipv4:"),
    ],
    ids=["no-port", "bad-port", "list-without-ipv4"],
)
def test_a_service_address_that_is_no_target_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, target: str, says: str
) -> None:
    monkeypatch.setenv("GATEWAY_DUMMY_ADDRESS", target)
    with pytest.raises(ValidationError, match=says) as refused:
        GatewaySettings()
    assert "dummy_address" in str(refused.value)
