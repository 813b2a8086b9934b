"""The calls between a stack's services held to their contracts (harness.stacks.checked_calls).

An inner project on each backend breaks the real user service (its table renamed
away: its queries fail, which it answers INTERNAL) and has dummy call it; the test that
caused that fails at teardown naming the service, the RPC, the code, the caller and the
trace, unless it opts out; a declared code (NOT_FOUND for an unknown owner) passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from harness import Span, Trace
from harness.stacks.checked_calls import undeclared_answers

INNER = """
import asyncpg
import grpc
import pytest

from dummy.v1 import dummy_pb2, dummy_pb2_grpc

UNKNOWN_OWNER = "00000000-0000-4000-8000-000000000000"


async def create_entity(stack):
    # a channel of its own, unchecked: the test's call to dummy is not what is tested
    async with grpc.aio.insecure_channel(stack.address("dummy")) as channel:
        dummy = dummy_pb2_grpc.DummyServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await dummy.CreateEntity(
                dummy_pb2.CreateEntityRequest(owner_id=UNKNOWN_OWNER, name="x"), timeout=10
            )
    return refused.value.code()


async def with_users_gone(backend, stack):
    # user's queries fail on a table that is not there: it answers INTERNAL
    connection = await asyncpg.connect(backend.databases.dsns["user"])
    try:
        await connection.execute("ALTER TABLE users RENAME TO users_away")
        try:
            return await create_entity(stack)
        finally:
            await connection.execute("ALTER TABLE users_away RENAME TO users")
    finally:
        await connection.close()


@pytest.mark.stack("dummy")
async def test_a_declared_code_passes(stack):
    # user answers NOT_FOUND (declared), dummy FAILED_PRECONDITION
    assert await create_entity(stack) == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.stack("dummy")
async def test_an_undeclared_code_fails(stack, harness_stack_backend):
    await with_users_gone(harness_stack_backend, stack)


@pytest.mark.allow_undeclared_codes
@pytest.mark.stack("dummy")
async def test_the_opt_out(stack, harness_stack_backend):
    await with_users_gone(harness_stack_backend, stack)
"""


@pytest.mark.integration
@pytest.mark.parametrize(
    "backend",
    [pytest.param("process", id="process"), pytest.param("docker", marks=pytest.mark.docker)],
)
def test_an_undeclared_code_between_services_fails_the_test(
    workspace_project: Callable[[str], pytest.Pytester], backend: str
) -> None:
    pytester = workspace_project("")
    pytester.makepyfile(test_inner=INNER)

    result = pytester.runpytest_subprocess("-rA", f"--harness-backend={backend}", timeout=240)

    output = result.stdout.str()
    result.assert_outcomes(passed=3, errors=1)  # the undeclared one passes, then errors
    assert re.search(r"^ERROR test_inner\.py::test_an_undeclared_code_fails", output, re.M)
    teardown = output.split("ERROR at teardown of test_an_undeclared_code_fails")[1]
    teardown = teardown.split("=====")[0]
    assert "UndeclaredStatusError" in teardown
    assert re.search(
        r"user answered user\.v1\.UserService/GetUser with INTERNAL, which it does not "
        r"declare \(its \(kit\.v1\.may_return\) lists INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE\)",
        teardown,
    ), teardown
    assert re.search(r"caller: dummy; trace [0-9a-f]{32}", teardown), teardown
    assert "request: [dummy] /dummy.v1.DummyService/CreateEntity" in teardown
    assert "@pytest.mark.allow_undeclared_codes" in teardown
    # the one error is that test's: the opt-out and the declared code pass clean
    errors = re.findall(r"^ERROR (\S+)", output, re.M)
    assert errors == ["test_inner.py::test_an_undeclared_code_fails"], errors


def span(span_id: str, parent: str | None, service: str, code: int, **attributes: object) -> Span:
    rpc = {}
    if "path" in attributes:
        rpc_service, _, method = str(attributes.pop("path")).partition("/")
        rpc = {"rpc.service": rpc_service, "rpc.method": method, "rpc.grpc.status_code": code}
    return Span(
        trace_id="ab" * 16,
        span_id=span_id,
        parent_span_id=parent,
        name=str(attributes.pop("name", "/x")),
        service=service,
        kind="SERVER",
        start_ns=int(span_id, 16),
        end_ns=int(span_id, 16) + 1,
        status="UNSET",
        attributes={**rpc, **attributes},  # type: ignore[dict-item]
    )


def test_only_what_a_provider_itself_answered_between_services_counts() -> None:
    import user.v1.user_pb2  # noqa: F401  (the declared codes live in its descriptors)

    root = span(
        "01",
        None,
        "gateway",
        0,
        name="GET /v1/entities/{id}",
        **{"http.route": "/v1/entities/{id}"},
    )
    get_user = "user.v1.UserService/GetUser"
    spans = Trace(
        [
            root,
            span("02", "01", "user", 13, path=get_user),  # INTERNAL: undeclared
            span("03", "01", "user", 5, path=get_user),  # NOT_FOUND: declared
            span("04", "01", "user", 1, path=get_user),  # CANCELLED: the caller's doing
            span("05", None, "user", 13, path=get_user),  # the test's own call
            span("06", "01", "elsewhere", 13, path=get_user),  # not a service of the stack
        ]
    )

    found = undeclared_answers(spans, {"gateway", "user"})

    assert len(found) == 1, found
    assert found[0].startswith("user answered user.v1.UserService/GetUser with INTERNAL")
    assert "caller: gateway; trace " + "ab" * 16 in found[0]
    assert "request: [gateway] GET /v1/entities/{id} (http.route=/v1/entities/{id})" in found[0]
