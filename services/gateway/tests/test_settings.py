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
