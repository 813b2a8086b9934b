"""Consumer-driven contracts: a consumer's tests record what its mocks answered
(``--harness-interactions=record``), ``check`` fails when the committed file differs, and
a provider's :class:`ProviderStates` replays each interaction and fails on a mismatch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from harness import ContractMismatch, GrpcMock, MockError, ProviderStates, Recorded
from user.v1 import user_pb2, user_pb2_grpc

if TYPE_CHECKING:
    from user.v1.user_pb2_grpc import UserServiceAsyncStub

INI = """
[pytest]
addopts = --strict-markers --strict-config -p no:randomly
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
"""

# A consumer ("shop") whose code asks the user service.
CONSUMER_TESTS = """
import uuid
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from harness import GrpcMocks
from user.v1 import user_pb2, user_pb2_grpc

pytestmark = pytest.mark.consumer("shop")


@pytest.fixture
def grpc_mocks():
    with GrpcMocks() as mocks:
        yield mocks


async def ask(mock, user_id):
    async with mock.channel() as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        try:
            return await stub.GetUser(user_pb2.GetUserRequest(id=user_id))
        except grpc.aio.AioRpcError as error:
            return error.code()


async def test_known(grpc_mocks):
    owner = str(uuid.uuid4())
    users = grpc_mocks.of(user_pb2_grpc.UserServiceStub)
    users.given("a user exists", id=owner)
    made = Timestamp()
    made.GetCurrentTime()
    users.when(lambda s: s.GetUser).returns(
        user_pb2.GetUserResponse(user=user_pb2.User(id=owner, email=EMAIL, create_time=made))
    )
    assert (await ask(users, owner)).user.email == EMAIL


async def test_unknown(grpc_mocks):
    users = grpc_mocks.of(user_pb2_grpc.UserServiceStub)
    users.when(lambda s: s.GetUser).fails(grpc.StatusCode.NOT_FOUND, "none")
    assert await ask(users, str(uuid.uuid4())) is grpc.StatusCode.NOT_FOUND


async def test_not_recorded(grpc_mocks):
    users = grpc_mocks.of(user_pb2_grpc.UserServiceStub)
    users.when(lambda s: s.GetUser).fails(
        grpc.StatusCode.PERMISSION_DENIED, "no", breaks_contract=True
    ).then().fails(grpc.StatusCode.UNAVAILABLE, "down")
    await ask(users, str(uuid.uuid4()))
    await ask(users, str(uuid.uuid4()))
"""

FILE = Path("contracts/user/consumers/shop.json")


def consumer(pytester: pytest.Pytester, email: str = "ann@example.com") -> None:
    pytester.makeini(INI)
    tests = pytester.path / "services" / "shop" / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    tests.joinpath("test_shop.py").write_text(f"EMAIL = {email!r}\n{CONSUMER_TESTS}")


def test_record_writes_one_deterministic_file_per_pair(pytester: pytest.Pytester) -> None:
    consumer(pytester)
    pytester.runpytest("--harness-interactions=record").assert_outcomes(passed=3)
    first = (pytester.path / FILE).read_text()
    pytester.runpytest("--harness-interactions=record").assert_outcomes(passed=3)
    assert (pytester.path / FILE).read_text() == first  # new uuids, new time: same file
    document = json.loads(first)
    assert (document["consumer"], document["provider"]) == ("shop", "user")
    known, unknown = document["interactions"]  # test_not_recorded's answers are not there
    assert known["test"] == "services/shop/tests/test_shop.py::test_known"
    placeholder = "00000000-0000-4000-8000-000000000001"
    assert known["given"] == [{"state": "a user exists", "params": {"id": placeholder}}]
    assert known["request"] == {"id": placeholder}
    assert known["response"]["user"] == {
        "id": placeholder,
        "email": "ann@example.com",
        "create_time": "1970-01-01T00:00:00Z",
    }
    assert known["matchers"] == {"user.create_time": "type"}  # the id was asked for: exact
    assert unknown["status"] == "NOT_FOUND"
    assert "response" not in unknown
    pytester.runpytest("--harness-interactions=check").assert_outcomes(passed=3)


def test_check_fails_when_the_consumers_tests_rely_on_something_else(
    pytester: pytest.Pytester,
) -> None:
    consumer(pytester)
    pytester.runpytest("--harness-interactions=record").assert_outcomes(passed=3)
    consumer(pytester, email="bo@example.com")
    result = pytester.runpytest("--harness-interactions=check")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*differ from what the consumers' tests rely on now*", "*shop.json"]
    )
    # one test of the file run alone: only its entry is compared, so a partial run agrees
    pytester.runpytest("--harness-interactions=check", "-k", "test_unknown").assert_outcomes(
        passed=1, deselected=2
    )


def test_check_fails_when_no_file_was_committed(pytester: pytest.Pytester) -> None:
    consumer(pytester)
    result = pytester.runpytest("--harness-interactions=check")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert not (pytester.path / FILE).exists()


def test_a_removed_test_leaves_the_file(pytester: pytest.Pytester) -> None:
    consumer(pytester)
    pytester.runpytest("--harness-interactions=record").assert_outcomes(passed=3)
    path = pytester.path / "services/shop/tests/test_shop.py"
    path.write_text(path.read_text().replace("async def test_unknown", "async def _unknown"))
    assert pytester.runpytest("--harness-interactions=check").ret == pytest.ExitCode.TESTS_FAILED
    pytester.runpytest("--harness-interactions=record").assert_outcomes(passed=2)
    tests = [
        entry["test"] for entry in json.loads((pytester.path / FILE).read_text())["interactions"]
    ]
    assert tests == ["services/shop/tests/test_shop.py::test_known"]


def test_record_writes_nothing_when_a_test_failed(pytester: pytest.Pytester) -> None:
    consumer(pytester)
    pytester.makepyfile(test_broken="def test_broken():\n    assert False\n")
    result = pytester.runpytest("--harness-interactions=record")
    result.stdout.fnmatch_lines(["*not written, tests failed*"])
    assert not (pytester.path / FILE).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--harness-interactions=keep"], "*choose one of record, check*"),
        (["--harness-interactions=record", "-n", "2"], "*records in one process*"),
    ],
)
def test_bad_usage_is_refused(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


# -- the provider's replay, against a mock standing in for the provider ---------------------

USER = "00000000-0000-4000-8000-000000000001"


def recorded(**changes: object) -> Recorded:
    entry = {
        "test": "services/shop/tests/test_shop.py::test_known",
        "rpc": "GetUser",
        "given": [{"state": "a user exists", "params": {"id": USER}}],
        "request": {"id": USER},
        "status": "OK",
        "response": {"user": {"id": USER, "email": "ann@example.com", "create_time": "x"}},
        "matchers": {"user.create_time": "type"},
        **changes,
    }
    return Recorded("shop", "user.v1.UserService", 0, entry)


async def replay(
    entry: Recorded, answer: user_pb2.User | grpc.StatusCode
) -> GrpcMock[UserServiceAsyncStub]:
    provider = GrpcMock.of(user_pb2_grpc.UserServiceStub)
    behaviour = provider.when(lambda s: s.GetUser)
    if isinstance(answer, grpc.StatusCode):
        behaviour.fails(answer, "as the provider says")
    else:
        behaviour.returns(user_pb2.GetUserResponse(user=answer))
    states = ProviderStates(Path("."))
    real = "0b9f3c52-0a43-4d47-9d2e-0c8e8e2f6a11"

    @states.state("a user exists")
    async def exists(stub: object, id: str) -> dict[str, str]:
        return {"id": real}

    async with provider.channel() as channel:
        await states.verify(entry, user_pb2_grpc.UserServiceStub(channel))
    return provider


REAL = "0b9f3c52-0a43-4d47-9d2e-0c8e8e2f6a11"


async def test_the_replay_passes_with_the_states_real_values() -> None:
    user = user_pb2.User(id=REAL, email="ann@example.com", name="Ann")
    user.create_time.GetCurrentTime()
    provider = await replay(recorded(), user)
    provider.verify(lambda s: s.GetUser).called_once_with(user_pb2.GetUserRequest(id=REAL))


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (grpc.StatusCode.NOT_FOUND, "status NOT_FOUND, recorded OK"),
        (user_pb2.User(id=REAL, email="bo@example.com"), "user.email: 'bo@example.com'"),
        (user_pb2.User(id=USER, email="ann@example.com"), f"user.id: '{USER}', recorded '{REAL}'"),
        (user_pb2.User(id=REAL, email="ann@example.com"), "user.create_time: not set"),
    ],
    ids=["status", "exact value", "state's value", "field not set"],
)
async def test_the_replay_fails_naming_the_consumer_and_its_test(
    answer: user_pb2.User | grpc.StatusCode, problem: str
) -> None:
    with pytest.raises(ContractMismatch) as raised:
        await replay(recorded(), answer)
    message = str(raised.value)
    assert "consumer 'shop' (its test services/shop/tests/test_shop.py::test_known)" in message
    assert problem in message


async def test_a_type_matcher_fails_on_another_type() -> None:
    entry = recorded(matchers={"user.email": "type", "user.create_time": "type"})
    entry.entry["response"]["user"]["email"] = 7
    with pytest.raises(ContractMismatch, match=r"user.email: 'ann@example.com', recorded 7"):
        await replay(
            entry, user_pb2.User(id=REAL, email="ann@example.com", create_time=Timestamp())
        )


async def test_a_state_the_provider_does_not_declare_fails() -> None:
    entry = recorded(given=[{"state": "a user is banned", "params": {}}])
    with pytest.raises(ContractMismatch, match=r"no handler for.*'a user exists'"):
        await replay(entry, grpc.StatusCode.NOT_FOUND)


def test_given_and_matchers_refuse_bad_input() -> None:
    users = GrpcMock.of(user_pb2_grpc.UserServiceStub)
    with pytest.raises(MockError, match="parameters must be strings"):
        users.given("a user exists", id=7)  # type: ignore[arg-type]
    with pytest.raises(MockError, match="name of a provider state"):
        users.given(" ")
    response = user_pb2.GetUserResponse(user=user_pb2.User(id=REAL))
    with pytest.raises(
        MockError, match=r"'user.email' is no field the response sets \(it sets: user.id\)"
    ):
        users.when(lambda s: s.GetUser).returns(response, matchers={"user.email": "type"})
    with pytest.raises(MockError, match="'like' is no matcher; use one of exact, type"):
        users.when(lambda s: s.GetUser).returns(response, matchers={"user.id": "like"})


def test_only_marked_tests_record(pytester: pytest.Pytester) -> None:
    consumer(pytester)
    path = pytester.path / "services/shop/tests/test_shop.py"
    path.write_text(path.read_text().replace('pytestmark = pytest.mark.consumer("shop")', ""))
    pytester.runpytest("--harness-interactions=record").assert_outcomes(passed=3)
    assert not (pytester.path / "contracts").exists()


def test_a_consumer_marker_needs_a_name(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_one="import pytest\n\n@pytest.mark.consumer\ndef test_one():\n    pass\n"
    )
    result = pytester.runpytest("--harness-interactions=record")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*@pytest.mark.consumer takes the consumer's name*"])
