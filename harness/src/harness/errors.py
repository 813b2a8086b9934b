"""Errors raised by the harness; each message says what happened, what was tried and the remedy.

HarnessError
├── PostgresNotFoundError   no usable ``postgres`` and ``initdb`` binaries
├── PostgresStartError      initdb failed, or the server exited or never accepted connections
├── DatabaseSetupError      a template could not be created or migrated, or a clean-up failed
├── StackError              a stack asked for what it cannot be: unknown service, cycle, bad link
├── LinkError               a fault proxy could not listen, or was used before it started
└── PostgresFaultError      a Postgres fault (stop, kill, start) could not be carried out
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of every error the harness raises on its own account."""


class PostgresNotFoundError(HarnessError):
    """No directory holding both ``postgres`` and ``initdb`` was found."""


class PostgresStartError(HarnessError):
    """The throwaway server could not be initialised or never got ready."""


class DatabaseSetupError(HarnessError):
    """A declared database could not be created, migrated or brought back to a clean state."""


class StackError(HarnessError):
    """A stack was asked for something it cannot be: an unknown service, a cycle, a link
    between services that do not call each other..."""


class LinkError(HarnessError):
    """A fault proxy (:class:`~harness.faults.Link`) could not do what it was asked."""


class PostgresFaultError(HarnessError):
    """The stack's Postgres could not be stopped, killed or started again."""
