"""harness.mocks with a server-streaming RPC, over a real grpc.aio channel.

The kit's contracts have no streaming RPC, so the test compiles a proto of its own
(tests/protos/harness_streams/v1/streams.proto, with (kit.v1.may_return) codes) with
grpc_tools.protoc and mypy-protobuf's plugins, as scripts/codegen.py compiles contracts/,
into a scratch folder that it puts on sys.path (and on MYPYPATH for the type checks).
Its modules are imported at run time, so their types are ``Any`` in this file: the type
checking of mock usage is tested by running mypy on a module that imports them.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc
import grpc_tools
import pytest

from harness import Abort, GrpcMock, Metadata, MockError, MockVerificationError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

REPO = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos"
StatusCode = grpc.StatusCode


def compile_protos(out: Path) -> None:
    bin_dir = Path(sys.executable).parent  # mypy-protobuf's plugins
    command = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--proto_path={PROTOS}", f"--proto_path={REPO / 'contracts'}",
        f"--proto_path={Path(grpc_tools.__file__).parent / '_proto'}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        f"--mypy_out={out}", f"--mypy_grpc_out={out}",
        "harness_streams/v1/streams.proto",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"protoc failed:\n{result.stderr}"
    for package in (out / "harness_streams", out / "harness_streams" / "v1"):
        (package / "__init__.py").write_text("")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("streams-proto")
    compile_protos(out)
    sys.path.insert(0, str(out))
    try:
        yield out
    finally:
        sys.path.remove(str(out))


@pytest.fixture(scope="module")
def pb2(generated: Path) -> Any:
    return importlib.import_module("harness_streams.v1.streams_pb2")


@pytest.fixture(scope="module")
def pb2_grpc(generated: Path) -> Any:
    return importlib.import_module("harness_streams.v1.streams_pb2_grpc")


@pytest.fixture
def mock(pb2_grpc: Any) -> GrpcMock[Any]:
    return GrpcMock.of(pb2_grpc.TickerServiceStub)


@pytest.fixture
async def stub(mock: GrpcMock[Any], pb2_grpc: Any) -> AsyncIterator[Any]:
    async with mock.channel() as channel:
        yield pb2_grpc.TickerServiceStub(channel)


async def received(
    stub: Any, request: Any, **kwargs: Any
) -> tuple[list[tuple[float, Any]], grpc.aio.AioRpcError | None]:
    """Each message of one WatchTicks call with its arrival (monotonic), and its error."""
    messages = []
    try:
        async for message in stub.WatchTicks(request, **kwargs):
            messages.append((time.monotonic(), message))
    except grpc.aio.AioRpcError as error:
        return messages, error
    return messages, None


def ticks(pb2: Any, count: int) -> list[Any]:
    return [pb2.Tick(ticker="ACME", sequence=number) for number in range(1, count + 1)]


async def test_programmed_messages_arrive_in_order_and_the_request_is_verified(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    programmed = ticks(pb2, 3)
    mock.when(lambda s: s.WatchTicks).streams(programmed)
    programmed[0].sequence = 99  # copied when programmed: later changes do not leak in
    request = pb2.WatchTicksRequest(ticker="ACME")

    messages, error = await received(stub, request, metadata=(("x-from", "test"),))

    assert error is None
    assert [message for _, message in messages] == ticks(pb2, 3)
    call = mock.verify(lambda s: s.WatchTicks).called_once_with(request)
    assert call.metadata_value("x-from") == "test"
    assert mock.calls(lambda s: s.WatchTicks) == [call]
    mock.verify(lambda s: s.GetTick).never_called()
    mock.assert_no_errors()


async def test_a_failure_after_messages_arrives_after_them(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    mock.when(lambda s: s.WatchTicks).streams(ticks(pb2, 2)).fails(
        StatusCode.UNAVAILABLE, "feed lost", trailing_metadata=(("retry-after", "1"),)
    )

    messages, error = await received(stub, pb2.WatchTicksRequest(ticker="ACME"))

    assert [message for _, message in messages] == ticks(pb2, 2)
    assert error is not None
    assert (error.code(), error.details()) == (StatusCode.UNAVAILABLE, "feed lost")
    trailing = cast("Metadata", error.trailing_metadata())
    assert ("retry-after", "1") in tuple(trailing)


async def test_a_failure_at_the_start_sends_no_message(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    mock.when(lambda s: s.WatchTicks).fails(StatusCode.INVALID_ARGUMENT, "ticker: empty")

    messages, error = await received(stub, pb2.WatchTicksRequest())

    assert messages == []
    assert error is not None
    assert (error.code(), error.details()) == (StatusCode.INVALID_ARGUMENT, "ticker: empty")
    mock.verify(lambda s: s.WatchTicks).called_once_with(pb2.WatchTicksRequest())


async def test_the_delay_comes_before_each_message_and_the_failure(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    delay = 0.15
    mock.when(lambda s: s.WatchTicks).streams(ticks(pb2, 3)).fails(
        StatusCode.UNAVAILABLE, "late"
    ).delays(delay)

    started = time.monotonic()
    messages, error = await received(stub, pb2.WatchTicksRequest(ticker="ACME"))
    ended = time.monotonic()

    # Message k (from 1) cannot arrive before k delays, nor the failure before 4: lower
    # bounds from the call's start, which a client slow to read (a loaded machine) only
    # pushes later.
    arrivals = [at - started for at, _ in messages] + [ended - started]
    assert len(arrivals) == 4, messages
    for number, arrival in enumerate(arrivals, start=1):
        assert arrival >= number * delay * 0.95, (number, arrivals)
    assert error is not None
    assert error.code() is StatusCode.UNAVAILABLE


async def test_a_deadline_shorter_than_the_stream_is_exceeded_mid_stream(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):  # connects the channel first (UNIMPLEMENTED)
        await stub.GetTick(pb2.GetTickRequest())
    mock.when(lambda s: s.WatchTicks).streams(ticks(pb2, 8)).delays(0.25)

    messages, error = await received(stub, pb2.WatchTicksRequest(ticker="ACME"), timeout=1.0)

    assert 1 <= len(messages) < 8, messages
    assert error is not None
    assert error.code() is StatusCode.DEADLINE_EXCEEDED


async def test_a_stream_the_caller_cancels_stops_and_the_mock_answers_the_next_call(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    sent = []

    async def ticks_of(call: Any) -> AsyncIterator[Any]:
        for number in range(1, 50):
            sent.append(number)
            yield pb2.Tick(sequence=number)
            await asyncio.sleep(0.05)

    mock.when(lambda s: s.WatchTicks).responds(ticks_of).then().streams(ticks(pb2, 2))
    call = stub.WatchTicks(pb2.WatchTicksRequest())
    assert (await call.read()).sequence == 1
    call.cancel()
    await asyncio.sleep(0.3)
    stopped_at = len(sent)
    await asyncio.sleep(0.3)

    assert stopped_at < 10
    assert len(sent) == stopped_at  # the responder stopped with the call
    messages, error = await received(stub, pb2.WatchTicksRequest())
    assert (error, [m for _, m in messages]) == (None, ticks(pb2, 2))
    mock.assert_no_errors()


async def test_steps_give_each_call_its_stream_until_used_up(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    request = pb2.WatchTicksRequest(ticker="ACME")
    mock.when(lambda s: s.WatchTicks).streams(ticks(pb2, 1)).times(2).then().fails(
        StatusCode.UNAVAILABLE, "down"
    ).times(1)

    outcomes = [await received(stub, request) for _ in range(4)]

    assert [[message for _, message in messages] for messages, _ in outcomes] == [
        ticks(pb2, 1),
        ticks(pb2, 1),
        [],
        [],
    ]
    errors = [error.code() if error else None for _, error in outcomes]
    assert errors == [None, None, StatusCode.UNAVAILABLE, StatusCode.UNIMPLEMENTED]
    last = outcomes[3][1]
    assert last is not None
    assert "programmed answers are used up" in (last.details() or "")
    mock.verify(lambda s: s.WatchTicks).called_times(4)


async def test_an_unprogrammed_or_empty_stream_is_unimplemented_saying_so(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    _, error = await received(stub, pb2.WatchTicksRequest())
    assert error is not None
    assert error.code() is StatusCode.UNIMPLEMENTED
    assert "TickerService.WatchTicks was not programmed" in (error.details() or "")

    mock.when(lambda s: s.WatchTicks)
    _, error = await received(stub, pb2.WatchTicksRequest())
    assert error is not None
    assert "no outcome; add .streams(), .responds() or .fails()" in (error.details() or "")


async def test_an_undeclared_code_is_refused_unless_the_contract_is_broken_on_purpose(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    behaviour = mock.when(lambda s: s.WatchTicks)
    refusal = (
        "fails\\(\\): harness_streams.v1.TickerService.WatchTicks does not declare NOT_FOUND: "
        "its \\(kit.v1.may_return\\) lists INVALID_ARGUMENT, UNAVAILABLE"
    )
    with pytest.raises(MockError, match=refusal):
        behaviour.fails(StatusCode.NOT_FOUND)
    with pytest.raises(MockError, match=refusal):
        behaviour.streams(ticks(pb2, 1)).fails(StatusCode.NOT_FOUND)
    with pytest.raises(MockError, match="OK is not a failure"):
        behaviour.fails(StatusCode.OK)
    assert mock.declared_codes(lambda s: s.WatchTicks) == frozenset(
        {StatusCode.INVALID_ARGUMENT, StatusCode.UNAVAILABLE}
    )

    mock.when(lambda s: s.WatchTicks).streams(ticks(pb2, 1)).fails(
        StatusCode.NOT_FOUND, "gone", breaks_contract=True
    )
    messages, error = await received(stub, pb2.WatchTicksRequest())
    assert len(messages) == 1
    assert error is not None
    assert error.code() is StatusCode.NOT_FOUND


def test_unary_and_streaming_programming_are_not_mixed_up(mock: GrpcMock[Any], pb2: Any) -> None:
    tick = pb2.Tick(ticker="ACME")
    with pytest.raises(MockError, match=r"WatchTicks is server-streaming: .* not \.returns\(\)"):
        mock.when(lambda s: s.WatchTicks).returns(tick)
    with pytest.raises(MockError, match=r"GetTick is unary: .* not \.streams\(\)"):
        mock.when(lambda s: s.GetTick).streams([tick])
    with pytest.raises(AttributeError):
        mock.when(lambda s: s.WatchTicks).no_such_method()


@pytest.mark.parametrize(
    ("program", "message"),
    [
        (lambda b, pb2: b.streams([pb2.Tick(), pb2.GetTickRequest()]), "message 1: WatchTicks"),
        (lambda b, pb2: b.streams(pb2.Tick()), "streams\\(\\) takes a list"),
        (lambda b, pb2: b.streams([]).streams([]), "this step already"),
        (lambda b, pb2: b.fails(StatusCode.UNAVAILABLE).streams([]), "this step already"),
        (
            lambda b, pb2: b.fails(StatusCode.UNAVAILABLE).fails(StatusCode.UNAVAILABLE),
            "this step already",
        ),
        (lambda b, pb2: b.then(), "then\\(\\) after a step with no outcome; give it .streams"),
        (lambda b, pb2: b.streams([]).responds(list), "this step already"),
        (lambda b, pb2: b.responds(pb2.Tick()), "responds\\(\\) takes a function"),
        (lambda b, pb2: b.delays(-1), "delays\\(\\) takes a number"),
    ],
    ids=["wrong-type", "not-a-list", "streams-twice", "streams-after-fails", "fails-twice",
         "then-first", "responds-after-streams", "responds-no-function", "negative-delay"],
)  # fmt: skip
def test_stream_programming_mistakes_are_refused_at_once(
    mock: GrpcMock[Any], pb2: Any, program: Any, message: str
) -> None:
    with pytest.raises(MockError, match=message):
        program(mock.when(lambda s: s.WatchTicks), pb2)


async def test_a_responder_streams_what_it_computes_and_may_abort_after_messages(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    def ticks_of(call: Any) -> Iterator[Any]:
        for number in (1, 2):
            yield pb2.Tick(ticker=call.request.ticker, sequence=number)
        raise Abort(StatusCode.UNAVAILABLE, "feed lost", trailing_metadata=(("at", "2"),))

    mock.when(lambda s: s.WatchTicks).responds(ticks_of).delays(0.05)

    messages, error = await received(stub, pb2.WatchTicksRequest(ticker="XYZ"))

    assert [(m.ticker, m.sequence) for _, m in messages] == [("XYZ", 1), ("XYZ", 2)]
    assert error is not None
    assert (error.code(), error.details()) == (StatusCode.UNAVAILABLE, "feed lost")
    mock.assert_no_errors()


async def test_an_async_responder_runs_on_the_loop_that_programmed_it(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    released = asyncio.Event()  # of the test's loop: awaited by the responder
    loops = []

    async def ticks_of(call: Any) -> AsyncIterator[Any]:
        loops.append(asyncio.get_running_loop())
        yield pb2.Tick(sequence=1)
        await released.wait()
        yield pb2.Tick(sequence=2)

    mock.when(lambda s: s.WatchTicks).responds(ticks_of)
    call = stub.WatchTicks(pb2.WatchTicksRequest())
    first = await call.read()
    released.set()
    second = await call.read()

    assert (first.sequence, second.sequence) == (1, 2)
    assert await call.read() is getattr(grpc.aio, "EOF")  # noqa: B009  (not in grpc-stubs)
    assert loops == [asyncio.get_running_loop()]


@pytest.mark.parametrize(
    ("responder", "sent", "reason"),
    [
        (lambda pb2: lambda call: pb2.Tick(), 0, "returned Tick, not the messages of a stream"),
        (
            lambda pb2: lambda call: [pb2.Tick(), pb2.GetTickRequest()],
            1,
            "message 1: WatchTicks answers harness_streams.v1.Tick, not "
            "harness_streams.v1.GetTickRequest",
        ),
        (lambda pb2: lambda call: [pb2.Tick(), 1 / 0], 0, "raised ZeroDivisionError"),
        (
            lambda pb2: lambda call: iter_then_abort([pb2.Tick()], Abort(StatusCode.NOT_FOUND)),
            1,
            "raised Abort: harness_streams.v1.TickerService.WatchTicks does not declare NOT_FOUND",
        ),
    ],
    ids=["a-message-not-a-stream", "wrong-type-mid-stream", "raised", "undeclared-abort"],
)
async def test_a_broken_responder_ends_the_stream_unknown_and_is_kept_in_errors(
    mock: GrpcMock[Any], stub: Any, pb2: Any, responder: Any, sent: int, reason: str
) -> None:
    mock.when(lambda s: s.WatchTicks).responds(responder(pb2))

    messages, error = await received(stub, pb2.WatchTicksRequest())

    assert len(messages) == sent
    assert error is not None
    assert error.code() is StatusCode.UNKNOWN
    assert reason in (error.details() or "")
    assert len(mock.errors) == 1
    assert reason in mock.errors[0]


def iter_then_abort(messages: list[Any], abort: Abort) -> Iterator[Any]:
    yield from messages
    raise abort


async def test_a_verification_failure_shows_the_requests_received(
    mock: GrpcMock[Any], stub: Any, pb2: Any
) -> None:
    mock.when(lambda s: s.WatchTicks).streams([])
    await received(stub, pb2.WatchTicksRequest(ticker="ACME"))

    with pytest.raises(MockVerificationError) as caught:
        mock.verify(lambda s: s.WatchTicks).called_once_with(pb2.WatchTicksRequest(ticker="XYZ"))

    text = str(caught.value)
    assert "TickerService.WatchTicks: expected 1 call with" in text
    assert 'ticker: "XYZ"' in text
    assert "but received 1 call:" in text
    assert 'ticker: "ACME"' in text


# -- the type checker -------------------------------------------------------------------


TYPED_USE = """
from __future__ import annotations

from collections.abc import Iterator

import grpc

from harness import Call, GrpcMock
from harness_streams.v1 import streams_pb2, streams_pb2_grpc

mock = GrpcMock.of(streams_pb2_grpc.TickerServiceStub)
mock.when(lambda stub: stub.WatchTicks).streams([streams_pb2.Tick(sequence=1)]).fails(
    grpc.StatusCode.UNAVAILABLE, "down"
).delays(0.1).then().fails(grpc.StatusCode.INVALID_ARGUMENT)
mock.when(lambda stub: stub.GetTick).returns(streams_pb2.Tick())


def ticks_of(call: Call[streams_pb2.WatchTicksRequest]) -> Iterator[streams_pb2.Tick]:
    yield streams_pb2.Tick(ticker=call.request.ticker)


mock.when(lambda stub: stub.WatchTicks).responds(ticks_of).then().responds(lambda call: [])
calls: list[Call[streams_pb2.WatchTicksRequest]] = mock.calls(lambda stub: stub.WatchTicks)
mock.verify(lambda stub: stub.WatchTicks).called_once_with(streams_pb2.WatchTicksRequest())
"""

# Each line below is one mistake; the test expects one error on each, mentioning the text.
TYPED_MISTAKES = {
    "mock.when(lambda stub: stub.WatchTicks).returns(streams_pb2.Tick())": (
        '"StreamBehaviour[WatchTicksRequest, Tick]" has no attribute "returns"'
    ),
    "mock.when(lambda stub: stub.GetTick).streams([streams_pb2.Tick()])": (
        '"Behaviour[GetTickRequest, Tick]" has no attribute "streams"'
    ),
    "mock.when(lambda stub: stub.WatchTicks).responds(lambda call: streams_pb2.Tick())": (
        'got "Tick", expected "Iterable[Tick] | AsyncIterable[Tick]'
    ),
    "mock.when(lambda stub: stub.WatchTicks).streams([streams_pb2.WatchTicksRequest()])": (
        '"WatchTicksRequest"; expected "Tick"'
    ),
    "mock.verify(lambda stub: stub.WatchTicks).called_once_with(streams_pb2.GetTickRequest())": (
        'incompatible type "GetTickRequest"; expected "WatchTicksRequest"'
    ),
}


def run_mypy(tmp_path: Path, generated: Path, source: str) -> list[str]:
    module = tmp_path / "uses_stream_mock.py"
    module.write_text(source)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(module),
        ],
        cwd=REPO,  # the config's mypy_path is relative to it
        env={**os.environ, "MYPYPATH": str(generated)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "error: " in result.stdout or result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if ": error: " in line]


def test_stream_mocks_type_check(tmp_path: Path, generated: Path) -> None:
    """Correct use is clean, and each mistake is an error on its own line (one mypy run)."""
    source = TYPED_USE + "\n".join(TYPED_MISTAKES) + "\n"
    first = len(TYPED_USE.splitlines()) + 1
    errors = run_mypy(tmp_path, generated, source)
    assert all(f"uses_stream_mock.py:{line}: " not in "".join(errors) for line in range(first)), (
        errors
    )
    for offset, (line, expected) in enumerate(TYPED_MISTAKES.items()):
        on_line = [error for error in errors if f"uses_stream_mock.py:{first + offset}: " in error]
        assert on_line, f"no type error for {line!r}; mypy said:\n" + "\n".join(errors)
        assert any(expected in error for error in on_line), on_line
    assert len({error.split(":")[1] for error in errors}) == len(TYPED_MISTAKES), errors
