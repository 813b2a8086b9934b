"""Faults the harness injects: a TCP fault proxy between services, Postgres and service control."""

from __future__ import annotations

from harness.faults.journal import FaultEntry, FaultJournal
from harness.faults.postgres_control import ControllablePostgres, PostgresControl
from harness.faults.proxy import Link, LinkStats
from harness.faults.service_control import ServiceControl

__all__ = [
    "ControllablePostgres",
    "FaultEntry",
    "FaultJournal",
    "Link",
    "LinkStats",
    "PostgresControl",
    "ServiceControl",
]
