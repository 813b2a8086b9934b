"""Reaping what killed runs left on the Docker engine, while other sessions reap too."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docker.errors import APIError, NotFound

from harness.backends.containers import LABEL, OWNER_LABEL, reap_stale_resources

GONE = "1-1"  # pid 1 never started at 1: an owner that is gone


@dataclass
class FakeResource:
    name: str
    owner: str
    fails_with: Exception | None = None
    removed: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL: "true", OWNER_LABEL: self.owner}

    @property
    def attrs(self) -> dict[str, Any]:
        return {"Labels": self.labels}

    def remove(self, **_: Any) -> None:
        if self.fails_with is not None:
            raise self.fails_with
        self.removed = True


@dataclass
class FakeCollection:
    items: list[FakeResource]
    listed_with: dict[str, Any] = field(default_factory=dict)

    def list(self, **options: Any) -> list[FakeResource]:
        self.listed_with = options
        return self.items


@dataclass
class FakeClient:
    containers: FakeCollection
    networks: FakeCollection


def test_what_another_session_reaped_first_is_passed_over() -> None:
    from harness.owner import current_owner

    live = current_owner()
    containers = FakeCollection(
        [
            FakeResource("reaped-meanwhile", GONE, NotFound("No such container")),
            FakeResource("stale", GONE),
            FakeResource("of-a-live-run", live),
        ]
    )
    networks = FakeCollection(
        [
            FakeResource("net-reaped-meanwhile", GONE, NotFound("No such network")),
            FakeResource("net-in-use", GONE, APIError("has active endpoints")),
            FakeResource("net-stale", GONE),
        ]
    )

    reaped = reap_stale_resources(FakeClient(containers, networks))  # type: ignore[arg-type]

    assert reaped == ["container stale", "network net-stale"]
    # a container removed between the listing and its inspection is left out, not an error
    assert containers.listed_with["ignore_removed"] is True
    assert not containers.items[2].removed
