"""harness.images.service_images.build_planned: the wheelhouses one after another, the
docker builds side by side, a failure raised once every build has ended (docker and the
wheel fetching replaced by fakes that record what ran when)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from harness import ImageError, Workspace
from harness.images.pins import Requirements
from harness.images.progress import Mode, Progress
from harness.images.service_images import Outcome, Plan, build_planned

ROOT = Path(__file__).resolve().parents[2]
BUILDER = "harness.images.service_images"  # its fill_wheelhouse and build_service are faked


class FakeDocker:
    """Records the wheelhouses filled and the builds running at once; ``fails`` names
    the images whose build fails."""

    def __init__(self, fails: frozenset[str] = frozenset()) -> None:
        self.fails = fails
        self.events: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def fill_wheelhouse(
        self, progress: Progress, root: Path, name: str, *args: object, **kwargs: object
    ) -> Path:
        with self.lock:
            self.events.append(f"wheels {name}")
            assert self.running == 0, "a wheelhouse filled while a build ran"
        return root

    def build_service(
        self,
        progress: Progress,
        workspace: Workspace,
        plan: Plan,
        python_image: str,
        earlier_seconds: float = 0.0,
    ) -> Outcome:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.2)  # long enough for the next build to start beside it
        with self.lock:
            self.running -= 1
            self.events.append(f"built {plan.tag}")
        if plan.tag in self.fails:
            raise ImageError(f"docker build of {plan.tag} failed")
        return Outcome(plan.service.name, plan.tag, True, 0.2, 1.0)


@pytest.fixture
def plans(tmp_path: Path) -> list[Plan]:
    workspace = Workspace.read(ROOT)
    requirements = Requirements(tmp_path / "image.txt", tmp_path / "host.txt")
    return [
        Plan(
            workspace.members[name],
            f"kit/{name}:1",
            f"kit/{name}:local",
            requirements,
            {},
            ("no image",),
        )
        for name in ("auth", "dummy", "user")
    ]


def run(plans: list[Plan], docker: FakeDocker, monkeypatch: pytest.MonkeyPatch) -> list[Outcome]:
    monkeypatch.setattr(f"{BUILDER}.fill_wheelhouse", docker.fill_wheelhouse)
    monkeypatch.setattr(f"{BUILDER}.build_service", docker.build_service)
    monkeypatch.setattr(f"{BUILDER}.concurrent_builds", lambda: 2)
    progress = Progress(io.StringIO(), mode=Mode.PLAIN, ticking=False)
    return build_planned(progress, Workspace.read(ROOT), plans, "kit/python:3.11-slim")


def test_the_wheelhouses_are_filled_first_then_builds_run_two_at_once(
    plans: list[Plan], monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = FakeDocker()

    outcomes = run(plans, docker, monkeypatch)

    assert [o.tag for o in outcomes] == ["kit/auth:1", "kit/dummy:1", "kit/user:1"]  # plan order
    assert docker.events[:3] == ["wheels auth", "wheels dummy", "wheels user"]
    assert docker.most_at_once == 2


def test_a_failed_build_is_raised_after_the_others_have_ended(
    plans: list[Plan], monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = FakeDocker(fails=frozenset({"kit/auth:1"}))

    with pytest.raises(ImageError, match="docker build of kit/auth:1 failed"):
        run(plans, docker, monkeypatch)

    assert sorted(e for e in docker.events if e.startswith("built")) == [
        "built kit/auth:1",
        "built kit/dummy:1",
        "built kit/user:1",
    ]
