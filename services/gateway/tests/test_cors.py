"""CORS: only the configured origins may read, refusals in the error shape."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fixtures.gateway import assert_error

from .support import (
    GatewayFactory,
)

APP = "https://app.example.com"
EVIL = "https://evil.example.com"
PREFLIGHT_POST = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "X-Requested-With, Content-Type",
}


@dataclass(frozen=True)
class CorsCase:
    method: str
    path: str
    headers: dict[str, str]
    status: int
    allowed: bool  # the answer lets the origin's page read it (with cookies)
    error: str | None = None  # the error code of the answer, if any
    mentions: str = ""  # what the error message names


CORS_CASES = {
    "simple from the allowed origin": CorsCase("GET", "/healthz", {"Origin": APP}, 200, True),
    "simple from a foreign origin": CorsCase("GET", "/healthz", {"Origin": EVIL}, 200, False),
    "an error to the allowed origin": CorsCase(
        "GET", "/user/me", {"Origin": APP}, 401, True, "unauthenticated"
    ),
    "a state change from a foreign origin": CorsCase(
        "POST", "/logout", {"Origin": EVIL}, 403, False, "csrf_header_missing"
    ),
    "preflight from the allowed origin": CorsCase(
        "OPTIONS", "/entities", {"Origin": APP, **PREFLIGHT_POST}, 204, True
    ),
    "preflight, headers in any case": CorsCase(
        "OPTIONS",
        "/entities/1",
        {
            "Origin": APP,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "x-requested-with",
        },
        204,
        True,
    ),
    "preflight from a foreign origin": CorsCase(
        "OPTIONS",
        "/entities",
        {"Origin": EVIL, **PREFLIGHT_POST},
        403,
        False,
        "cors_preflight_refused",
        EVIL,
    ),
    "preflight from the null origin": CorsCase(
        "OPTIONS",
        "/entities",
        {"Origin": "null", **PREFLIGHT_POST},
        403,
        False,
        "cors_preflight_refused",
        "null",
    ),
    "preflight, a method not allowed": CorsCase(
        "OPTIONS",
        "/entities",
        {"Origin": APP, "Access-Control-Request-Method": "PUT"},
        403,
        False,
        "cors_preflight_refused",
        "PUT",
    ),
    "preflight, a header not allowed": CorsCase(
        "OPTIONS",
        "/entities",
        {
            **PREFLIGHT_POST,
            "Origin": APP,
            "Access-Control-Request-Headers": "X-Requested-With, X-Evil",
        },
        403,
        False,
        "cors_preflight_refused",
        "X-Evil",
    ),
    "OPTIONS that is not a preflight goes to the routes": CorsCase(
        "OPTIONS", "/healthz", {"Origin": APP}, 405, True, "method_not_allowed"
    ),
}


@pytest.mark.parametrize("case", list(CORS_CASES.values()), ids=list(CORS_CASES))
async def test_cors_lets_only_the_configured_origins_read_and_refuses_in_the_error_shape(
    make_gateway: GatewayFactory, case: CorsCase
) -> None:
    async with make_gateway(cors_origins=[APP]) as gw:
        response = await gw.http.request(case.method, case.path, headers=case.headers)
        if case.error is None:
            assert response.status_code == case.status, response.text
        else:
            error = assert_error(response, case.status, case.error)
            assert case.mentions in error["message"]
        assert "x-trace-id" in response.headers
        assert "Origin" in response.headers.get("vary", "")
        cors = {
            name: value
            for name, value in response.headers.items()
            if name.startswith("access-control-")
        }
        if not case.allowed:
            assert cors == {}
            return
        assert cors["access-control-allow-origin"] == case.headers["Origin"]
        assert cors["access-control-allow-credentials"] == "true"
        if case.method == "OPTIONS" and case.status == 204:
            assert (
                case.headers["Access-Control-Request-Method"]
                in cors["access-control-allow-methods"]
            )
            assert "X-Requested-With" in cors["access-control-allow-headers"]
        else:
            assert "X-Trace-Id" in cors["access-control-expose-headers"]
        if case.status == 204:
            gw.auth.verify(lambda s: s.ValidateSession).never_called()


async def test_no_origin_no_cors_headers(make_gateway: GatewayFactory) -> None:
    async with make_gateway(cors_origins=[APP]) as gw:
        response = await gw.http.get("/healthz")
        assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_a_preflight_with_two_origins_is_refused(make_gateway: GatewayFactory) -> None:
    async with make_gateway(cors_origins=[APP]) as gw:
        headers = [("origin", APP), ("origin", APP), *PREFLIGHT_POST.items()]
        response = await gw.http.options("/entities", headers=headers)
        assert_error(response, 403, "cors_preflight_refused")
        assert "access-control-allow-origin" not in response.headers
