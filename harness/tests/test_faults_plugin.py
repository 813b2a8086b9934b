"""Faults as a test writer injects them: pytester runs small projects on each backend.

One inner run per backend covers every fault kind, one inner test each, so that they
share the stacks' boots; the outcomes are asserted per test, and the report of a test
that fails with faults in force is read for its fault section.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

# boots Postgres, service processes or containers (and pytest runs of its own)
pytestmark = pytest.mark.integration

RUN_TIMEOUT = 300.0

BACKENDS = [
    pytest.param("process", id="process"),
    pytest.param("docker", id="docker", marks=pytest.mark.docker),
]


COMMON = """
import asyncio
import time

import asyncpg
import grpc

from dummy.v1 import dummy_pb2, dummy_pb2_grpc
from user.v1 import user_pb2, user_pb2_grpc

# Generous: a slow machine passes; a fault that never heals fails instead of hanging.
RECOVERY_SECONDS = 20


async def new_owner(stack, email="ann@example.com", timeout=10):
    users = stack.stub("user", user_pb2_grpc.UserServiceStub)
    created = await users.CreateUser(
        user_pb2.CreateUserRequest(email=email, name="Ann"), timeout=timeout
    )
    return created.user.id


async def get_user(stack, user_id, timeout=10):
    users = stack.stub("user", user_pb2_grpc.UserServiceStub)
    return (await users.GetUser(user_pb2.GetUserRequest(id=user_id), timeout=timeout)).user


async def create_entity(stack, owner_id, name="an entity", timeout=10):
    dummy = stack.stub("dummy", dummy_pb2_grpc.DummyServiceStub)
    created = await dummy.CreateEntity(
        dummy_pb2.CreateEntityRequest(owner_id=owner_id, name=name), timeout=timeout
    )
    return created.entity


async def status_of(call):
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def eventually(call, within=RECOVERY_SECONDS):
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


async def flush_commits(stack):
    # The harness's Postgres commits asynchronously (synchronous_commit=off): a crash
    # right after a commit may lose it. A checkpoint writes everything out first.
    connection = await asyncpg.connect(stack.postgres.dsn())
    try:
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()
"""

POSTGRES = """
import asyncpg
import grpc
import pytest

from common import create_entity, eventually, flush_commits, get_user, new_owner, status_of


@pytest.mark.stack("dummy")
async def test_postgres_stopped_then_started(stack):
    owner_id = await new_owner(stack)
    stack.postgres.stop()
    assert not stack.postgres.running
    assert stack.postgres.faults == ("stopped",)
    assert await status_of(new_owner(stack, "bob@example.com")) == grpc.StatusCode.UNAVAILABLE
    stack.postgres.start()
    assert stack.postgres.running
    # the same data: the owner created before the stop is still there
    entity = await eventually(lambda: create_entity(stack, owner_id))
    assert entity.owner_id == owner_id


@pytest.mark.stack("dummy")
async def test_postgres_killed_recovers_and_is_left_down(stack):
    owner_id = await new_owner(stack)
    await flush_commits(stack)
    await stack.postgres.akill()
    assert not stack.postgres.running
    assert await status_of(get_user(stack, owner_id)) == grpc.StatusCode.UNAVAILABLE
    await stack.postgres.astart()
    fetched = await eventually(lambda: get_user(stack, owner_id))
    assert fetched.email == "ann@example.com"
    stack.postgres.kill()  # and left dead for the next test


@pytest.mark.stack("dummy")
async def test_the_next_test_gets_postgres_back(stack):
    assert stack.postgres.running
    assert stack.postgres.faults == ()
    owner_id = await eventually(lambda: new_owner(stack))
    assert (await create_entity(stack, owner_id)).owner_id == owner_id


@pytest.mark.stack("user")
async def test_postgres_restarted(stack):
    owner_id = await new_owner(stack)
    await flush_commits(stack)
    await stack.postgres.arestart()
    assert (await eventually(lambda: get_user(stack, owner_id))).id == owner_id
    await stack.postgres.arestart(kill=True)
    assert (await eventually(lambda: get_user(stack, owner_id))).id == owner_id


@pytest.mark.stack("user")
async def test_durable_commits_survive_a_crash(stack):
    stack.postgres.durable()
    owners = [await new_owner(stack, f"owner{index}@example.com") for index in range(5)]
    await stack.postgres.akill()  # at once: no checkpoint, no wait for the WAL writer
    await stack.postgres.astart()
    for owner_id in owners:
        assert (await eventually(lambda: get_user(stack, owner_id))).id == owner_id


@pytest.mark.stack("user")
async def test_the_next_test_commits_asynchronously_again(stack):
    connection = await asyncpg.connect(stack.postgres.dsn())
    try:
        assert await connection.fetchval("SHOW synchronous_commit") == "off"
    finally:
        await connection.close()


@pytest.mark.stack("user")
async def test_a_failure_with_postgres_down_reports_it(stack):
    stack.postgres.kill()
    assert False, "failing with Postgres killed"
"""

LINKS = """
import time

import grpc
import pytest

from common import create_entity, eventually, get_user, new_owner, status_of

LINKED = pytest.mark.stack("dummy", links=[("dummy", "user"), ("user", "postgres")])


@LINKED
async def test_a_clean_link_passes_every_call_and_counts_it(stack):
    owner_id = await new_owner(stack)
    entity = await create_entity(stack, owner_id)
    assert entity.owner_id == owner_id
    to_user = stack.link("dummy", "user").stats
    assert to_user.bytes_upstream > 0 and to_user.bytes_downstream > 0
    assert stack.link("user", "postgres").stats.bytes_downstream > 0


@LINKED
async def test_a_cut_link_is_unavailable_until_restored(stack):
    owner_id = await new_owner(stack)
    link = stack.link("dummy", "user")
    link.cut()
    assert await status_of(create_entity(stack, owner_id)) == grpc.StatusCode.UNAVAILABLE
    link.restore()
    assert (await eventually(lambda: create_entity(stack, owner_id))).owner_id == owner_id


@LINKED
async def test_a_slow_link_runs_out_the_callers_deadline(stack):
    owner_id = await new_owner(stack)
    stack.link("dummy", "user").latency(1.0)
    call = create_entity(stack, owner_id, timeout=0.5)
    assert await status_of(call) == grpc.StatusCode.DEADLINE_EXCEEDED
    stack.link("dummy", "user").latency(0.2, jitter=0.1)
    started = time.monotonic()
    await create_entity(stack, owner_id, name="slow but answered")
    assert time.monotonic() - started >= 0.2  # a round trip crosses it twice


@LINKED
async def test_a_narrow_link_runs_out_the_callers_deadline(stack):
    owner_id = await new_owner(stack)
    stack.link("dummy", "user").bandwidth(100)  # a call's frames are hundreds of bytes
    call = create_entity(stack, owner_id, timeout=0.5)
    assert await status_of(call) == grpc.StatusCode.DEADLINE_EXCEEDED


@LINKED
async def test_a_dropped_link_holds_calls_until_restored(stack):
    owner_id = await new_owner(stack)
    stack.link("dummy", "user").drop()
    call = create_entity(stack, owner_id, timeout=1.0)
    assert await status_of(call) == grpc.StatusCode.DEADLINE_EXCEEDED
    stack.link("dummy", "user").restore()
    assert (await eventually(lambda: create_entity(stack, owner_id))).owner_id == owner_id


@LINKED
async def test_a_reset_link_is_reconnected(stack):
    owner_id = await new_owner(stack)
    link = stack.link("dummy", "user")
    await create_entity(stack, owner_id)
    opened = link.stats.connections
    link.reset()
    await eventually(lambda: create_entity(stack, owner_id, name="after the reset"))
    assert link.stats.connections > opened


@LINKED
async def test_a_cut_database_link_is_unavailable_until_restored(stack):
    owner_id = await new_owner(stack)
    stack.link("user", "postgres").cut()
    assert await status_of(get_user(stack, owner_id)) == grpc.StatusCode.UNAVAILABLE
    stack.link("user", "postgres").restore()
    assert (await eventually(lambda: get_user(stack, owner_id))).id == owner_id
    stack.link("dummy", "user").cut()  # and left cut for the next test


@LINKED
async def test_the_next_test_gets_every_link_restored(stack):
    assert stack.link("dummy", "user").faults == ()
    # Counted from this test on: the earlier tests opened several connections through it
    # (a reset link reconnects); at most one may be here already, dummy's own reconnection
    # once the link left cut was restored, which runs on dummy's clock, not the test's.
    assert stack.link("dummy", "user").stats.connections <= 1
    owner_id = await eventually(lambda: new_owner(stack))
    assert (await eventually(lambda: create_entity(stack, owner_id))).owner_id == owner_id


@LINKED
async def test_a_failure_with_a_cut_link_reports_it(stack):
    stack.link("dummy", "user").latency(0.1)
    stack.link("dummy", "user").cut()
    assert False, "failing with a cut link"


@pytest.mark.stack("dummy", links=[("user", "dummy"), ("dummy", "auth"), ("dummy", "nobody")])
async def test_links_between_services_that_do_not_call_each_other_are_refused(stack):
    pass
"""

# What the inner tests above must end with.
EXPECTED = {
    "test_links.py::test_a_clean_link_passes_every_call_and_counts_it": "PASSED",
    "test_links.py::test_a_cut_link_is_unavailable_until_restored": "PASSED",
    "test_links.py::test_a_slow_link_runs_out_the_callers_deadline": "PASSED",
    "test_links.py::test_a_narrow_link_runs_out_the_callers_deadline": "PASSED",
    "test_links.py::test_a_dropped_link_holds_calls_until_restored": "PASSED",
    "test_links.py::test_a_reset_link_is_reconnected": "PASSED",
    "test_links.py::test_a_cut_database_link_is_unavailable_until_restored": "PASSED",
    "test_links.py::test_the_next_test_gets_every_link_restored": "PASSED",
    "test_links.py::test_a_failure_with_a_cut_link_reports_it": "FAILED",
    "test_links.py::test_links_between_services_that_do_not_call_each_other_are_refused": ("ERROR"),
    "test_postgres.py::test_postgres_stopped_then_started": "PASSED",
    "test_postgres.py::test_postgres_killed_recovers_and_is_left_down": "PASSED",
    "test_postgres.py::test_the_next_test_gets_postgres_back": "PASSED",
    "test_postgres.py::test_postgres_restarted": "PASSED",
    "test_postgres.py::test_durable_commits_survive_a_crash": "PASSED",
    "test_postgres.py::test_the_next_test_commits_asynchronously_again": "PASSED",
    "test_postgres.py::test_a_failure_with_postgres_down_reports_it": "FAILED",
}

SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+::\S+)")
FAILURE_HEADER = re.compile(r"^_+ (?:ERROR at \w+ of )?(\S+) _+$")


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """Each test's outcome, from the short summary that ``-rA`` prints."""
    found: dict[str, str] = {}
    for line in result.stdout.lines:
        match = SUMMARY_LINE.match(line)
        if match:
            found[match[2]] = match[1]
    return found


def failure_report(result: pytest.RunResult, test: str) -> str:
    """The report of one failed (or erred) test: from its header to the next one."""
    lines: list[str] = []
    inside = False
    for line in result.stdout.lines:
        header = FAILURE_HEADER.match(line)
        if header or line.startswith("====="):
            inside = bool(header) and header is not None and header[1] == test
            continue
        if inside:
            lines.append(line)
    assert lines, f"no failure report of {test}:\n{result.stdout.str()}"
    return "\n".join(lines)


def section(report: str, title: str) -> list[str]:
    """The lines of a report section (``----- title -----``) up to the next one."""
    lines = report.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if re.fullmatch(rf"-+ {re.escape(title)} -+", line)),
        None,
    )
    assert start is not None, f"no section {title!r} in the report:\n{report}"
    body: list[str] = []
    for line in lines[start + 1 :]:
        if re.fullmatch(r"-{3,} .* -{3,}", line):
            break
        body.append(line)
    return body


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_fault_kind_and_the_healing_between_tests(
    workspace_project: Callable[[str], pytest.Pytester], backend: str
) -> None:
    pytester = workspace_project("")
    pytester.makepyfile(common=COMMON, test_postgres=POSTGRES, test_links=LINKS)

    result = pytester.runpytest_subprocess(
        "-rA", f"--harness-backend={backend}", timeout=RUN_TIMEOUT
    )

    assert outcomes(result) == EXPECTED, result.stdout.str()
    report = failure_report(result, "test_a_failure_with_postgres_down_reports_it")
    faults = section(report, "faults of this test")
    assert faults[:3] == ["in force at the failure:", "  postgres: killed", "injected:"], report
    assert re.fullmatch(r"  \+ *\d+\.\d{3} s  postgres: kill", faults[3]), report

    report = failure_report(result, "test_a_failure_with_a_cut_link_reports_it")
    faults = section(report, "faults of this test")
    assert faults[:3] == [
        "in force at the failure:",
        "  dummy -> user: cut, latency 0.1 s",
        "injected:",
    ], report
    injected = [line.split(" s  ", 1)[1] for line in faults[3:]]
    assert injected[0] == "dummy -> user: latency 0.1 s", report
    # dummy may hold a connection to user from an earlier test, or not
    assert re.fullmatch(r"dummy -> user: cut \(\d+ open connections? reset\)", injected[1])
    assert len(injected) == 2, report

    report = failure_report(
        result, "test_links_between_services_that_do_not_call_each_other_are_refused"
    )
    for line in [
        "StackError: links that cannot be made:",
        "- user -> dummy: user does not call 'dummy' (it calls nothing, and has a "
        "database: 'postgres')",
        "- dummy -> auth: dummy does not call 'auth' (it calls ['user'], and has a "
        "database: 'postgres')",
        "- dummy -> nobody: dummy does not call 'nobody'",
    ]:
        assert line in report, report
