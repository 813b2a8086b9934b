"""Calls to a provider over httpx, with every failure translated into an auth error.

Timeouts, connection errors, 5xx and rate limiting are ProviderUnavailable (retrying
may succeed); any other non-2xx answer, and a body that is not the JSON expected,
is ProviderRejected. No httpx exception leaves this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from auth.errors import ProviderRejected, ProviderUnavailable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from auth.oauth.port import Provider

INVALID_ANSWER = "it gave an invalid answer"


async def send(
    http: httpx.AsyncClient,
    provider: Provider,
    method: str,
    url: str,
    *,
    timeout_seconds: float,
    refused: str,
    headers: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Sends one request and returns its 2xx response.

    ``refused`` is the caller-facing problem when the provider answers 4xx (e.g.
    "the authorization code was refused").
    """
    try:
        response = await http.request(
            method,
            url,
            headers=headers,
            data=data,
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
        )
    except httpx.TimeoutException as error:
        raise ProviderUnavailable(provider, "it timed out") from error
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise ProviderUnavailable(provider, "it could not be reached") from error

    status = response.status_code
    if status >= 500 or _rate_limited(response):
        raise ProviderUnavailable(provider, f"it answered HTTP {status}")
    if not response.is_success:
        raise ProviderRejected(provider, refused, detail=_describe(response))
    return response


def json_object(provider: Provider, response: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object, or ProviderRejected."""
    body = _json(provider, response)
    if not isinstance(body, dict):
        raise ProviderRejected(
            provider, INVALID_ANSWER, detail=f"{_where(response)}: not a JSON object"
        )
    return body


def json_array(provider: Provider, response: httpx.Response) -> list[Any]:
    """The body as a JSON array, or ProviderRejected."""
    body = _json(provider, response)
    if not isinstance(body, list):
        raise ProviderRejected(
            provider, INVALID_ANSWER, detail=f"{_where(response)}: not a JSON array"
        )
    return body


def _json(provider: Provider, response: httpx.Response) -> object:
    try:
        body: object = response.json()
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProviderRejected(
            provider, INVALID_ANSWER, detail=f"{_where(response)}: body is not JSON"
        ) from error
    return body


def _rate_limited(response: httpx.Response) -> bool:
    # GitHub says "rate limited" with 403 and no remaining requests; everyone else with 429.
    return response.status_code == 429 or (
        response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"
    )


def _describe(response: httpx.Response) -> str:
    """For server logs: status, endpoint and the provider's OAuth ``error`` code if any."""
    description = f"{_where(response)}: HTTP {response.status_code}"
    try:
        body: object = response.json()
    except ValueError:
        return description
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description += f" {body['error']}"
    return description


def _where(response: httpx.Response) -> str:
    # Without the query string: it may carry a code or a token.
    url = response.request.url
    return f"{response.request.method} {url.scheme}://{url.host}{url.path}"
