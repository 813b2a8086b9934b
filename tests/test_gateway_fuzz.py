"""Requests generated from the gateway's own OpenAPI document (schemathesis, on Hypothesis)
against the real stack: valid and invalid bodies, paths, queries and headers for every
operation. None may get a 5xx, and every error must come in the one JSON shape with the
trace id of its response.

The hand-written table in test_gateway_stack.py names the cases we thought of; this
finds the ones we did not. Derandomized (the same requests on every run, so a failure
reproduces) and bounded: ``MAX_EXAMPLES`` requests per operation and mode. (Cases are
drawn with Hypothesis directly: schemathesis' own pytest integration does not run on
pytest 9 yet.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from fixtures.gateway import CSRF, oauth_login
from harness import StackView

if TYPE_CHECKING:
    from conftest import OauthProviders

pytestmark = pytest.mark.stack("gateway")

MAX_EXAMPLES = 20


@pytest.fixture
async def session_token(stack: StackView, oauth_providers: OauthProviders) -> str:
    """A session from a real Google login (the fuzzed routes get past authentication)."""
    browser = stack.http("gateway", timeout=15)
    finished = await oauth_login(
        browser,
        "google",
        lambda url: oauth_providers.google.authorize(url, sub="fuzz", email="fuzz@example.com"),
    )
    assert finished.status_code == 303, finished.text
    return str(browser.cookies["session"])


def problem_with(response: Any) -> str | None:
    """What is wrong with one answer, or None. Requests the server refuses before the app
    (e.g. a request target it cannot parse) are no exception: gateway.server answers them
    in the error shape too."""
    if response.status_code >= 500:
        return "a server error"
    trace_ids = response.headers.get("x-trace-id") or []  # each header: a list of values
    if len(trace_ids) != 1:
        return f"not one X-Trace-Id header: {trace_ids}"
    trace_id = trace_ids[0]
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            return "an error that is not the JSON error shape"
        if set(error) != {"code", "message", "trace_id"} or error["trace_id"] != trace_id:
            return f"an error in another shape: {error}"
    return None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(
    stack: StackView, session_token: str, mode: GenerationMode
) -> None:
    base_url = stack.url("gateway")
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=10)
    # logout last: after it the session is gone, and the routes behind it are not reached
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document is invalid: {result.err()}"
        operations.append(result.ok())
    operations.sort(key=lambda operation: operation.path == "/logout")
    assert len(operations) >= 10, [operation.label for operation in operations]
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def answers_well(case: Any) -> None:
            response = case.call(
                base_url=base_url,
                headers=dict(CSRF),
                cookies={"session": session_token},
                timeout=15,
            )
            problem = problem_with(response)
            assert problem is None, (
                f"{problem}: {case.method} {response.request.url} -> "
                f"{response.status_code} {response.text[:300]}"
            )

        try:
            answers_well()
        except Unsatisfiable:
            # nothing about this operation can be made invalid (e.g. GET /healthz)
            assert mode is GenerationMode.NEGATIVE, operation.label
        except AssertionError as failure:
            failures.append(f"{operation.label}: {str(failure).splitlines()[0]}")
    assert not failures, "\n".join(failures)
