"""DeleteSession (logout): only a token whose secret verifies deletes its session."""

from __future__ import annotations

from auth.repository import SessionRepository
from auth.rpc.clock import Clock
from auth.rpc.validate_session import authenticated_session
from auth.v1 import auth_pb2


async def delete_session(
    request: auth_pb2.DeleteSessionRequest, sessions: SessionRepository, clock: Clock
) -> auth_pb2.DeleteSessionResponse:
    stored, _ = await authenticated_session(request.token, sessions, clock)
    await sessions.delete(stored.id)
    return auth_pb2.DeleteSessionResponse()
