"""Storage of users: the port, its PostgreSQL adapter and its in-memory fake."""

from user.repository.memory import InMemoryUserRepository
from user.repository.port import UserRepository
from user.repository.postgres import PostgresUserRepository

__all__ = ["InMemoryUserRepository", "PostgresUserRepository", "UserRepository"]
