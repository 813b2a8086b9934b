"""A session's backend, its databases, its Postgres control and fault journal, and the
stacks booted on it."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import Backend
from harness.databases import Databases
from harness.faults.journal import FaultJournal
from harness.faults.postgres_control import PostgresControl
from harness.services import ServiceSpec
from harness.stacks.checked_calls import SCHEDULE_DELAY_MS
from harness.stacks.request import StackRequest
from harness.stacks.stack import Stack
from harness.traces import TraceReceiver

__all__ = [
    "BackendSession",
]


@dataclass
class BackendSession:
    """The session's backend, the declared databases on its Postgres, its control for
    fault tests, and the journal of the faults each test injects."""

    backend: Backend
    databases: Databases
    journal: FaultJournal = field(default_factory=FaultJournal)
    stacks: dict[Any, Stack] = field(default_factory=dict)
    postgres: PostgresControl = field(init=False)

    def __post_init__(self) -> None:
        self.postgres = PostgresControl(self.backend.postgres, self.journal)

    def clean_stack(
        self,
        specs: Sequence[ServiceSpec],
        wanted: StackRequest,
        receiver: TraceReceiver,
        key: Hashable | None = None,
    ) -> Stack:
        """The stack of ``wanted`` (booted once per session and ``key``, default the
        request's), clean for a test: healed, its databases reset, the fault journal and
        the trace receiver emptied."""
        key = wanted.key if key is None else key
        booted = self.stacks.get(key)
        self.postgres.heal()  # a Postgres left down by another stack's test, or a failed heal
        if booted is None:
            booted = Stack.boot(
                self.backend,
                specs,
                wanted,
                extra_env={
                    "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                    # sooner than the services' 100 ms: each test waits for its last spans
                    "OTEL_BSP_SCHEDULE_DELAY": str(SCHEDULE_DELAY_MS),
                },
                journal=self.journal,
                postgres=self.postgres,
            )
            self.stacks[key] = booted
            receiver.clear()  # start-up spans (migrations) belong to no test
        booted.heal()  # after a boot too: link stats count from this test on
        self.databases.clean()
        self.journal.clear()
        receiver.clear()
        return booted
