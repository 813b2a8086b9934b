"""Who may own entities: the port, its adapter over the user service, and its fake."""

from dummy.owners.memory import InMemoryOwners
from dummy.owners.port import Owners
from dummy.owners.user_service import UserServiceOwners

__all__ = ["InMemoryOwners", "Owners", "UserServiceOwners"]
