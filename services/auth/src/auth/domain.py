"""Values of the auth service that are not sessions or provider protocols."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from auth.oauth.port import Provider


@dataclass(frozen=True)
class OauthAccount:
    """The link between a provider account and a user."""

    provider: Provider
    provider_user_id: str
    user_id: UUID
    created_at: datetime
