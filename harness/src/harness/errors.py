"""Errors raised by the harness; each message says what happened, what was tried and the remedy.

HarnessError
├── PostgresNotFoundError   no usable ``postgres`` and ``initdb`` binaries
├── PostgresStartError      initdb failed, or the server exited or never accepted connections
└── DatabaseSetupError      a template could not be created or migrated, or a clean-up failed
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
