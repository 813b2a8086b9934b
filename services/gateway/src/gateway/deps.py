"""FastAPI dependencies: the settings and clients of the app, and the CSRF check.

CSRF: every state-changing request (POST, PUT, PATCH, DELETE) must carry the header
``X-Requested-With`` (any non-empty value; e.g. ``X-Requested-With: fetch``). A page of
another origin cannot send a custom header without a CORS preflight, which only the
configured origins pass, so a forged form post or image never reaches a handler. This
needs no token state and works for curl and scripts alike. Safe methods (GET) change
nothing and are not checked. Refused requests get 403 ``csrf_header_missing``.
"""

from __future__ import annotations

from typing import cast

from fastapi import Request

from gateway.clients import Clients
from gateway.errors import ApiError
from gateway.settings import GatewaySettings

CSRF_HEADER = "X-Requested-With"


def get_settings(request: Request) -> GatewaySettings:
    return cast("GatewaySettings", request.app.state.settings)


def get_clients(request: Request) -> Clients:
    return cast("Clients", request.app.state.clients)


def require_csrf_header(request: Request) -> None:
    if (
        request.method in {"POST", "PUT", "PATCH", "DELETE"}
        and not request.headers.get(CSRF_HEADER, "").strip()
    ):
        raise ApiError(
            403, "csrf_header_missing", f"state-changing requests need the {CSRF_HEADER} header"
        )


# ``openapi_extra`` of the routes: which security schemes (see gateway.openapi) they need.
NEEDS_SESSION: dict[str, object] = {"security": [{"session": []}]}
NEEDS_SESSION_AND_CSRF: dict[str, object] = {"security": [{"session": [], "csrf": []}]}
NEEDS_CSRF: dict[str, object] = {"security": [{"csrf": []}]}
