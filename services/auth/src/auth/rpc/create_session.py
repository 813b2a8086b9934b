"""CreateSession: mint a token, store only the digest of its secret."""

from __future__ import annotations

from auth.repository import SessionRepository
from auth.rpc.clock import Clock
from auth.rpc.convert import session_message
from auth.sessions import StoredSession, new_session
from auth.v1 import auth_pb2
from servicekit.validation import parse_uuid


async def create_session(
    request: auth_pb2.CreateSessionRequest, sessions: SessionRepository, clock: Clock
) -> auth_pb2.CreateSessionResponse:
    user_id = parse_uuid("user_id", request.user_id)
    minted = new_session(clock())
    await sessions.create(StoredSession(minted.id, user_id, minted.secret_hash, minted.expire_time))
    return auth_pb2.CreateSessionResponse(
        session=session_message(minted.id, str(user_id), minted.expire_time), token=minted.token
    )
