"""An HTTP client that keeps cookies the way a browser does on a developer's machine.

Browsers treat ``http://localhost`` and ``http://127.0.0.1`` as secure contexts: they
send ``Secure`` cookies there over plain HTTP. Python's cookie jar does not (Secure
cookies go over https only), so a test of a service configured for production (Secure
session cookies) over a loopback port would silently lose its session. This client
sends them back to loopback hosts, and only there.

(httpx copies the client's cookies into a jar with the default policy for every
request, so a custom ``CookiePolicy`` is not kept; instead, once a response's cookies
are stored, the Secure cookies of loopback hosts are marked sendable over HTTP. The
attributes a test checks are in the response's ``Set-Cookie`` headers.)
"""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx

__all__ = ["browser_client", "is_loopback"]


def is_loopback(host: str) -> bool:
    # http.cookiejar stores the cookies of a dotless host under "<host>.local"
    host = host.lstrip(".").removesuffix(".local")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def browser_client(base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on ``base_url`` with browser-like cookies, no redirects
    followed (a test looks at each one) and no proxy from the environment."""
    kwargs.setdefault("follow_redirects", False)
    kwargs.setdefault("trust_env", False)
    hooks = kwargs.pop("event_hooks", {})
    client = httpx.AsyncClient(base_url=base_url, **kwargs)

    async def loopback_is_secure(response: httpx.Response) -> None:
        for cookie in client.cookies.jar:
            if cookie.secure and is_loopback(cookie.domain):
                cookie.secure = False

    client.event_hooks = {
        "request": list(hooks.get("request", [])),
        "response": [loopback_is_secure, *hooks.get("response", [])],
    }
    return client
