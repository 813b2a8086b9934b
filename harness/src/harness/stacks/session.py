"""A session's backend, its databases, its Postgres control and fault journal, and the
stacks booted on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import Backend
from harness.databases import Databases
from harness.faults.journal import FaultJournal
from harness.faults.postgres_control import PostgresControl
from harness.stacks.stack import Stack

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
