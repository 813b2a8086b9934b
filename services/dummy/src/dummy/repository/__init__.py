"""Storage of entities: the port, its PostgreSQL adapter and its in-memory fake."""

from dummy.repository.memory import InMemoryEntityRepository
from dummy.repository.port import EntityRepository
from dummy.repository.postgres import PostgresEntityRepository

__all__ = ["EntityRepository", "InMemoryEntityRepository", "PostgresEntityRepository"]
