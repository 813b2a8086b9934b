"""ValidateSession: verify the secret first, then refresh, keep, or delete when expired."""

from __future__ import annotations

from auth.errors import InvalidSessionToken
from auth.repository import SessionRepository
from auth.rpc.clock import Clock
from auth.rpc.convert import session_message
from auth.sessions import Expired, Refresh, StoredSession, Valid, decide, parse_token
from auth.v1 import auth_pb2


async def authenticated_session(
    token_text: str, sessions: SessionRepository, clock: Clock
) -> tuple[StoredSession, Valid | Refresh]:
    """The session of a token whose secret verified and which has not expired.

    Shared by ValidateSession and DeleteSession. An expired session is deleted
    here, and only after its secret verified (``decide`` raises before that).
    """
    token = parse_token(token_text)
    stored = await sessions.get(token.id)
    if stored is None:
        raise InvalidSessionToken()
    decision = decide(stored, token.secret, clock())
    if isinstance(decision, Expired):
        await sessions.delete(stored.id)
        raise InvalidSessionToken()
    return stored, decision


async def validate_session(
    request: auth_pb2.ValidateSessionRequest, sessions: SessionRepository, clock: Clock
) -> auth_pb2.ValidateSessionResponse:
    stored, decision = await authenticated_session(request.token, sessions, clock)
    expire_time = stored.expire_time
    if isinstance(decision, Refresh):
        await sessions.set_expire_time(stored.id, decision.new_expire_time)
        expire_time = decision.new_expire_time
    return auth_pb2.ValidateSessionResponse(
        session=session_message(stored.id, str(stored.user_id), expire_time),
        refreshed=isinstance(decision, Refresh),
    )
