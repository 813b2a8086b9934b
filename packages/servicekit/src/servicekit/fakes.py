"""What the in-memory repositories (the fakes shipped next to each port) share."""

from __future__ import annotations

from typing import ClassVar

from servicekit.errors import StorageUnavailable


class StorageSwitch:
    """Set ``unavailable = True`` on a fake to make every call fail as a lost database would."""

    unavailable: bool = False
    # what the fake raises then; a service may name its own subclass
    storage_error: ClassVar[type[StorageUnavailable]] = StorageUnavailable

    def _check_available(self) -> None:
        if self.unavailable:
            raise self.storage_error()
