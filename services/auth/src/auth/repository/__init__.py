"""Storage of sessions and OAuth account links: ports, PostgreSQL adapters, in-memory fakes."""

from auth.repository.memory import InMemoryOauthAccountRepository, InMemorySessionRepository
from auth.repository.port import OauthAccountRepository, SessionRepository
from auth.repository.postgres import PostgresOauthAccountRepository, PostgresSessionRepository

__all__ = [
    "InMemoryOauthAccountRepository",
    "InMemorySessionRepository",
    "OauthAccountRepository",
    "PostgresOauthAccountRepository",
    "PostgresSessionRepository",
    "SessionRepository",
]
