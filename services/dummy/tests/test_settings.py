"""DummySettings: where the user service is, one replica or several."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dummy.settings import DummySettings

DSN = "postgresql://dummy@127.0.0.1:5432/dummy"


@pytest.mark.parametrize(
    "target",
    ["user:50052", "dns:///user:50052", "ipv4:127.0.0.1:50052,127.0.0.1:50062"],
    ids=["host-port", "dns", "two-replicas"],
)
def test_the_user_service_may_be_several_replicas(
    monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.setenv("DUMMY_DATABASE_URL", DSN)
    monkeypatch.setenv("DUMMY_USER_ADDRESS", target)
    assert DummySettings().user_address == target


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("user", "not a gRPC target"),
        ("ipv4:127.0.0.1:50052,user:50062", "'user' is not an ipv4 address"),
        ("unix:///run/user.sock", "scheme 'unix' is not accepted"),
    ],
    ids=["no-port", "name-in-ipv4-list", "unix-socket"],
)
def test_a_user_address_that_is_no_target_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, target: str, says: str
) -> None:
    monkeypatch.setenv("DUMMY_DATABASE_URL", DSN)
    monkeypatch.setenv("DUMMY_USER_ADDRESS", target)
    with pytest.raises(ValidationError, match=says) as refused:
        DummySettings()
    assert "user_address" in str(refused.value)
