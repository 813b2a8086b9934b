"""CORS: which browser origins may call the gateway with their cookies.

Starlette's ``CORSMiddleware`` does not fit, for two reasons: it refuses a preflight
with ``400 text/plain "Disallowed CORS origin"`` (not the gateway's error shape, which
every other answer has), and with credentials allowed it sends
``Access-Control-Allow-Credentials: true`` to every origin, the refused ones included.

Here, for a request that carries ``Origin``:

- a **preflight** (``OPTIONS`` with ``Access-Control-Request-Method``) never reaches the
  routes. From an allowed origin, asking for an allowed method and allowed headers, it
  is ``204`` with ``Access-Control-Allow-Origin: <origin>``, ``-Allow-Credentials: true``,
  ``-Allow-Methods``, ``-Allow-Headers`` and ``-Max-Age``. Anything else is ``403
  cors_preflight_refused`` in the error shape, saying what was refused, with no
  ``Access-Control-*`` header: the browser then does not send the request.
- any **other request** goes to the routes as usual (CORS only decides what a page may
  read; the CSRF header check is what refuses a cross-site state change). Its answer,
  error or not, gets ``Access-Control-Allow-Origin``, ``-Allow-Credentials: true`` and
  ``-Expose-Headers`` only when the origin is allowed.

Every answer to a request with ``Origin`` says ``Vary: Origin`` (caches must not hand
one origin's answer to another). Origins are compared exactly, as browsers serialize
them (``https://app.example.com``, no path, no trailing slash); there is no wildcard,
as a wildcard with cookies would let any site act as the user.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_body
from gateway.middleware import trace_id_of

# The request headers a browser may send without asking (the CORS-safelisted ones);
# listed too since browsers ask for Content-Type when its value is not form-like (JSON).
SAFELISTED_HEADERS = ("Accept", "Accept-Language", "Content-Language", "Content-Type")
PREFLIGHT_MAX_AGE_SECONDS = 600


class CorsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_origins: Iterable[str],
        allowed_methods: Iterable[str],
        allowed_headers: Iterable[str],
        exposed_headers: Iterable[str],
    ) -> None:
        self.app = app
        self.allowed_origins = frozenset(allowed_origins)
        self.allowed_methods = tuple(allowed_methods)
        headers = dict.fromkeys((*SAFELISTED_HEADERS, *allowed_headers))
        self.allowed_headers = {name.lower(): name for name in headers}
        self.exposed_headers = ", ".join(exposed_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origins = headers.getlist("origin")
        if not origins:
            await self.app(scope, receive, send)
            return
        # Two Origin headers are never a browser's: neither is trusted.
        origin = origins[0] if len(origins) == 1 else None
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            response = self._preflight(scope, origin, headers)
            await response(scope, receive, send)
            return
        allowed = origin in self.allowed_origins

        async def send_with_cors_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers.add_vary_header("Origin")
                if allowed and origin is not None:
                    response_headers.update(self._credentialed(origin))
                    response_headers["Access-Control-Expose-Headers"] = self.exposed_headers
            await send(message)

        await self.app(scope, receive, send_with_cors_headers)

    def _credentialed(self, origin: str) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}

    def _preflight(self, scope: Scope, origin: str | None, headers: Headers) -> Response:
        if origin is None:
            return _refused(scope, "the request carries more than one Origin header")
        refusal = self._refusal(origin, headers)
        if refusal is not None:
            return _refused(scope, refusal)
        return Response(
            status_code=204,
            headers={
                **self._credentialed(origin),
                "Access-Control-Allow-Methods": ", ".join(self.allowed_methods),
                "Access-Control-Allow-Headers": ", ".join(self.allowed_headers.values()),
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
                "Vary": "Origin",
            },
        )

    def _refusal(self, origin: str, headers: Headers) -> str | None:
        """Why the preflight is refused, or None when it passes."""
        if origin not in self.allowed_origins:
            return f"the origin {origin!r} may not call this API"
        method = headers["access-control-request-method"]
        if method not in self.allowed_methods:
            allowed = ", ".join(self.allowed_methods)
            return f"the method {method!r} is not allowed cross-origin; allowed: {allowed}"
        requested = (
            name.strip() for name in headers.get("access-control-request-headers", "").split(",")
        )
        refused = [name for name in requested if name and name.lower() not in self.allowed_headers]
        if refused:
            allowed = ", ".join(self.allowed_headers.values())
            return (
                f"the headers {', '.join(refused)} are not allowed cross-origin; allowed: {allowed}"
            )
        return None


def _refused(scope: Scope, reason: str) -> Response:
    body = error_body("cors_preflight_refused", reason, trace_id_of(scope))
    return JSONResponse(body, status_code=403, headers={"Vary": "Origin"})
