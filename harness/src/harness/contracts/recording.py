"""The pytest side of recording consumer-driven contracts: ``--harness-interactions``.

``record`` writes ``contracts/<provider>/consumers/<consumer>.json`` from the interactions
the consumers' tests relied on; ``check`` fails the run, naming each file, when one differs
from what the tests record now (like ``codegen.py --check``). Tests of a consumer are
those marked ``@pytest.mark.consumer("<name>")`` (a module says it in ``pytestmark``).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from harness.contracts.interactions import RECORDER, PairFiles, TestRef

__all__ = [
    "CONSUMER_MARKER",
    "MODES",
    "InteractionsPlugin",
    "add_options",
    "configure",
    "consumer_of",
]

MODES = ("record", "check")
CONSUMER_MARKER = (
    "consumer(name): the service whose tests these are; with --harness-interactions the "
    "answers its mocks give are recorded as that consumer's contract with each provider"
)
OPTION = "--harness-interactions"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness")
    group.addoption(
        OPTION,
        dest="harness_interactions",
        default=None,
        help="record: write contracts/<provider>/consumers/<consumer>.json from what the "
        "consumers' tests got from mocks; check: fail when a file differs from that",
    )
    parser.addini(
        "harness_interactions_dir",
        "the folder of the providers' contracts (<provider>/consumers/<consumer>.json)",
        default="contracts",
    )


def consumer_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("consumer")
    if marker is not None:
        if len(marker.args) != 1 or not isinstance(marker.args[0], str) or not marker.args[0]:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.consumer takes the consumer's name, e.g. "
                f"@pytest.mark.consumer('gateway'); got {marker.args!r}"
            )
        return marker.args[0]
    return None


class InteractionsPlugin:
    """Registered when ``--harness-interactions`` is given."""

    def __init__(self, config: pytest.Config, mode: str) -> None:
        self.config = config
        self.mode = mode
        self.root = Path(config.rootpath, str(config.getini("harness_interactions_dir")))
        self.collected: set[str] = set()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.collected = {item.nodeid for item in items if consumer_of(item) is not None}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        consumer = consumer_of(item)
        RECORDER.start_test(None if consumer is None else TestRef(item.nodeid, consumer))
        try:
            return (yield)
        finally:
            RECORDER.start_test(None)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        files = PairFiles(self.root)
        for interaction in RECORDER.interactions:
            files.add(interaction)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        write = self.mode == "record"
        if write and (session.testsfailed or exitstatus not in (0, 5)):
            self._say(reporter, "interactions: not written, tests failed; fix them first")
            return
        stale = files.finish(write=write, ran=set(RECORDER.ran), collected=self.collected)
        if write:
            self._say(reporter, f"interactions: recorded under {self.root}")
        elif stale:
            listed = "\n".join(f"  {path}" for path in stale)
            self._say(
                reporter,
                "interactions: these consumer contracts differ from what the consumers' "
                f"tests rely on now:\n{listed}\nre-record them: pytest <the same tests> "
                f"{OPTION}=record, review and commit the change",
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @staticmethod
    def _say(reporter: object, text: str) -> None:
        if reporter is not None:
            reporter.write_line(text)  # type: ignore[attr-defined]


def configure(config: pytest.Config) -> None:
    mode = config.getoption("harness_interactions", None)
    if mode is None:
        return
    if mode not in MODES:
        raise pytest.UsageError(f"{OPTION}={mode!r}: choose one of {', '.join(MODES)}")
    if getattr(config, "workerinput", None) is not None or (
        config.getoption("numprocesses", None) not in (None, 0)
    ):
        raise pytest.UsageError(
            f"{OPTION} records in one process: run it with -n 0 (or -p no:xdist)"
        )
    RECORDER.interactions.clear()
    RECORDER.ran.clear()
    config.pluginmanager.register(InteractionsPlugin(config, mode), "harness-interactions")
