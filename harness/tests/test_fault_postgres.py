"""PostgresControl on a fake server: states, journal, healing and errors (no Postgres)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from harness import FaultJournal, PostgresControl, PostgresFaultError, PostgresStartError


@dataclass
class FakeServer:
    """A ControllablePostgres that only keeps its state, and fails where told to."""

    running: bool = True
    failing: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    log_location: str = "/tmp/fake/postgres.log"  # noqa: S108 - a name, never opened
    address: str = "127.0.0.1:5432"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.address}/{database}"

    def log_tail(self, lines: int = 30) -> str:
        return "FATAL:  the last line of the fake log"

    def _do(self, name: str, running: bool) -> None:
        self.calls.append(name)
        if name in self.failing:
            raise PostgresStartError(f"{name} failed on purpose")
        self.running = running

    def shut_down(self) -> None:
        self._do("shut_down", running=False)

    def crash(self) -> None:
        self._do("crash", running=False)

    def start_again(self) -> None:
        self._do("start_again", running=True)


def actions(journal: FaultJournal) -> list[str]:
    return [f"{entry.target}: {entry.action}" for entry in journal.entries]


@pytest.mark.parametrize(
    ("inject", "calls", "faults", "running", "journal"),
    [
        pytest.param(
            lambda postgres: postgres.stop(),
            ["shut_down"],
            ("stopped",),
            False,
            ["postgres: stop"],
            id="stop",
        ),
        pytest.param(
            lambda postgres: postgres.kill(),
            ["crash"],
            ("killed",),
            False,
            ["postgres: kill"],
            id="kill",
        ),
        pytest.param(
            lambda postgres: (postgres.kill(), postgres.start()),
            ["crash", "start_again"],
            (),
            True,
            ["postgres: kill", "postgres: start"],
            id="kill-then-start",
        ),
        pytest.param(
            lambda postgres: postgres.restart(),
            ["shut_down", "start_again"],
            (),
            True,
            ["postgres: stop", "postgres: start"],
            id="restart",
        ),
        pytest.param(
            lambda postgres: postgres.restart(kill=True),
            ["crash", "start_again"],
            (),
            True,
            ["postgres: kill", "postgres: start"],
            id="restart-after-a-crash",
        ),
        pytest.param(lambda postgres: postgres.start(), [], (), True, [], id="start-when-running"),
        pytest.param(
            lambda postgres: (postgres.stop(), postgres.heal()),
            ["shut_down", "start_again"],
            (),
            True,
            ["postgres: stop", "postgres: start (healed by the harness)"],
            id="heal-a-stopped-one",
        ),
        pytest.param(lambda postgres: postgres.heal(), [], (), True, [], id="heal-a-running-one"),
    ],
)
def test_each_action_reaches_the_server_and_is_journaled(
    inject: Callable[[PostgresControl], object],
    calls: list[str],
    faults: tuple[str, ...],
    running: bool,
    journal: list[str],
) -> None:
    server, recorded = FakeServer(), FaultJournal()
    postgres = PostgresControl(server, recorded)
    inject(postgres)
    assert server.calls == calls
    assert postgres.faults == faults
    assert postgres.running is running
    assert actions(recorded) == journal


def test_a_server_that_died_on_its_own_is_started_by_the_heal() -> None:
    server = FakeServer(running=False)
    PostgresControl(server).heal()
    assert server.calls == ["start_again"]


async def test_the_async_variants_do_the_same_from_a_thread() -> None:
    server = FakeServer()
    postgres = PostgresControl(server)
    await postgres.akill()
    assert postgres.faults == ("killed",)
    await postgres.astart()
    await postgres.astop()
    await postgres.arestart()
    assert server.calls == ["crash", "start_again", "shut_down", "shut_down", "start_again"]
    assert not postgres.faults


@pytest.mark.parametrize(
    ("failing", "inject", "action", "faults"),
    [
        pytest.param("crash", lambda p: p.kill(), "kill", (), id="kill"),
        pytest.param(
            "start_again", lambda p: (p.stop(), p.start()), "start", ("stopped",), id="start"
        ),
    ],
)
def test_a_failed_action_names_itself_the_remedy_and_the_log(
    failing: str, inject: Callable[[PostgresControl], object], action: str, faults: tuple[str, ...]
) -> None:
    postgres = PostgresControl(FakeServer(failing={failing}))
    with pytest.raises(PostgresFaultError) as failed:
        inject(postgres)
    message = str(failed.value)
    assert message.startswith(f"{action} of the stack's Postgres failed: {failing} failed on")
    assert "Remedy: the server's log (below) says why" in message
    assert failed.value.__notes__ == [
        "Server log (/tmp/fake/postgres.log):\nFATAL:  the last line of the fake log"
    ]
    assert postgres.faults == faults  # what it was before the failed action
