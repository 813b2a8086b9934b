"""The OpenAPI document, with the security schemes FastAPI cannot see.

``session`` is an apiKey in the cookie the settings name; ``csrf`` the
``X-Requested-With`` header. Routes say which they need with ``openapi_extra``
(:data:`gateway.deps.NEEDS_SESSION` and friends).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.deps import CSRF_HEADER
from gateway.settings import GatewaySettings


def install_openapi(app: FastAPI, settings: GatewaySettings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": settings.session_cookie_name,
                "description": "the session token, set by a login",
            },
            "csrf": {
                "type": "apiKey",
                "in": "header",
                "name": CSRF_HEADER,
                "description": "any non-empty value; required on POST, PATCH and DELETE",
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
