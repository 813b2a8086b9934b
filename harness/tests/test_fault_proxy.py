"""The fault proxy against a local echo server: each fault as a caller sees it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest

from harness import FaultJournal, Link, LinkError, LinkStats

# Bounds for what must happen (an echo, a reset): generous, a slow machine passes.
ANSWER_WITHIN = 5.0


@dataclass
class EchoServer:
    address: str
    connections: int = 0


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server_info = EchoServer("")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_info.connections += 1
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    server_info.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield server_info
    server.close()


@pytest.fixture
def link(echo: EchoServer) -> Iterator[Link]:
    with Link(echo.address, name="test -> echo") as started:
        yield started


_opened: list[asyncio.StreamWriter] = []


@pytest.fixture(autouse=True)
async def _close_connections() -> AsyncIterator[None]:
    yield
    for writer in _opened:
        writer.close()
    _opened.clear()


async def connect(link: Link) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the link, closed when the test ends."""
    host, port = link.address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    _opened.append(writer)
    return reader, writer


async def round_trip(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], payload: bytes
) -> bytes:
    reader, writer = connection
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), ANSWER_WITHIN)


async def test_a_clean_link_forwards_both_ways_and_counts(link: Link, echo: EchoServer) -> None:
    first, second = await connect(link), await connect(link)
    assert await round_trip(first, b"hello") == b"hello"
    assert await round_trip(second, b"x" * 100_000) == b"x" * 100_000
    assert link.stats == LinkStats(
        connections=2, open_connections=2, bytes_upstream=100_005, bytes_downstream=100_005
    )
    assert echo.connections == 2
    assert link.faults == ()
    link.clear_stats()
    assert link.stats == LinkStats(0, 2, 0, 0)


async def test_a_half_close_reaches_the_upstream_and_the_answer_comes_back(link: Link) -> None:
    reader, writer = await connect(link)
    writer.write(b"last words")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), ANSWER_WITHIN) == b"last words"


@dataclass(frozen=True)
class Slowdown:
    inject: Callable[[Link], None]
    payload: int
    at_least: float  # seconds an echo of the payload must take


@pytest.mark.parametrize(
    "slowdown",
    [
        # held in each direction: a round trip takes twice the latency
        pytest.param(Slowdown(lambda link: link.latency(0.3), 10, 0.6), id="latency"),
        pytest.param(
            Slowdown(lambda link: link.latency(0.3, jitter=0.1), 10, 0.4), id="latency-jitter"
        ),
        # 10 kB at 20 kB/s in 1 kB slices: the last leaves after 0.45 s (and the echo
        # answers each slice while the rest is still on its way)
        pytest.param(Slowdown(lambda link: link.bandwidth(20_000), 10_000, 0.4), id="bandwidth"),
    ],
)
async def test_a_slowed_link_still_delivers_everything_in_order(
    link: Link, slowdown: Slowdown
) -> None:
    connection = await connect(link)  # open before: the fault applies to it too
    slowdown.inject(link)
    payload = bytes(index % 251 for index in range(slowdown.payload))
    started = time.monotonic()
    assert await round_trip(connection, payload) == payload
    assert time.monotonic() - started >= slowdown.at_least


async def test_latency_delays_each_chunk_without_adding_up(link: Link) -> None:
    """Chunks sent one after the other each wait the latency from their own arrival: ten
    of them do not take ten times as long (a generous bound, not a benchmark)."""
    reader, writer = await connect(link)
    link.latency(0.3)
    started = time.monotonic()
    for index in range(10):
        writer.write(b"%d;" % index)
        await writer.drain()
        await asyncio.sleep(0.02)
    echoed = await asyncio.wait_for(reader.readexactly(20), ANSWER_WITHIN)
    assert echoed == b"".join(b"%d;" % index for index in range(10))
    assert 0.6 <= time.monotonic() - started < 3.0


async def test_reset_resets_open_connections_and_accepts_new_ones(link: Link) -> None:
    reader, writer = await connect(link)
    assert await round_trip((reader, writer), b"before") == b"before"
    link.reset()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), ANSWER_WITHIN)
    assert await round_trip(await connect(link), b"after") == b"after"
    assert link.faults == ()  # a reset is an event, not a state


async def test_drop_holds_everything_until_restored(link: Link, echo: EchoServer) -> None:
    opened = await connect(link)
    assert await round_trip(opened, b"1") == b"1"
    link.drop()
    assert link.faults == ("drop (blackhole)",)
    reader, writer = opened
    writer.write(b"held")
    late = await connect(link)  # accepted, but not passed on
    late[1].write(b"late")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(4), 0.3)
    assert echo.connections == 1
    link.restore()
    assert await asyncio.wait_for(reader.readexactly(4), ANSWER_WITHIN) == b"held"
    assert await asyncio.wait_for(late[0].readexactly(4), ANSWER_WITHIN) == b"late"
    assert echo.connections == 2


async def test_cut_refuses_new_connections_and_resets_open_ones(link: Link) -> None:
    reader, writer = await connect(link)
    assert await round_trip((reader, writer), b"open") == b"open"
    link.cut()
    assert link.faults == ("cut",)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), ANSWER_WITHIN)
    with pytest.raises(ConnectionRefusedError):
        await connect(link)
    link.restore()
    assert not link.faults
    assert await round_trip(await connect(link), b"healed") == b"healed"


async def test_restore_lifts_every_fault_at_once(link: Link) -> None:
    link.latency(0.5, jitter=0.1)
    link.bandwidth(1000)
    link.drop()
    assert link.faults == ("drop (blackhole)", "latency 0.5 s ± 0.1 s", "bandwidth 1000 B/s")
    link.restore()
    assert not link.faults
    assert await round_trip(await connect(link), b"x" * 10_000) == b"x" * 10_000


async def expect_reset(link: Link) -> None:
    """A new connection is reset: while connecting already, or at its first read."""

    async def connect_and_read() -> None:
        reader, _ = await connect(link)
        await asyncio.wait_for(reader.read(1), ANSWER_WITHIN)

    with pytest.raises(ConnectionResetError):
        await connect_and_read()


async def test_a_caller_of_a_down_upstream_sees_its_connection_reset() -> None:
    with Link("127.0.0.1:1", name="to nothing") as link:
        await expect_reset(link)


async def test_an_upstream_given_by_a_function_is_asked_at_each_connection(
    echo: EchoServer,
) -> None:
    where = ["127.0.0.1:1"]  # down at first, as a container not yet restarted
    with Link(lambda: where[0]) as link:
        await expect_reset(link)
        where[0] = echo.address
        assert link.upstream == echo.address
        assert await round_trip(await connect(link), b"found") == b"found"


async def test_the_journal_records_each_fault_and_restore(echo: EchoServer) -> None:
    journal = FaultJournal()
    with Link(echo.address, name="a -> b", journal=journal) as link:
        assert await round_trip(await connect(link), b"open") == b"open"
        link.latency(0.1)
        link.cut()
        link.restore()
        link.restore()  # nothing to restore: not recorded
        link.reset()
    assert [(entry.target, entry.action) for entry in journal.entries] == [
        ("a -> b", "latency 0.1 s"),
        ("a -> b", "cut (1 open connection reset)"),
        ("a -> b", "restore"),
        ("a -> b", "reset 0 connections"),
    ]
    assert "a -> b: cut (1 open connection reset)" in journal.render()


@pytest.mark.parametrize(
    ("inject", "message"),
    [
        pytest.param(lambda link: link.latency(-1), "give seconds >= 0", id="negative-latency"),
        pytest.param(
            lambda link: link.latency(0.1, jitter=0.2), "jitter <= seconds", id="jitter-too-big"
        ),
        pytest.param(lambda link: link.bandwidth(0), "positive number", id="zero-bandwidth"),
    ],
)
def test_bad_fault_values_are_refused_with_what_to_give(
    echo: EchoServer, inject: Callable[[Link], None], message: str
) -> None:
    with Link(echo.address, name="a -> b") as link:
        with pytest.raises(ValueError, match=message):
            inject(link)
        assert link.faults == ()


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda link: link.cut(), id="cut"),
        pytest.param(lambda link: link.address, id="address"),
    ],
)
def test_a_link_not_started_says_how_to_start_it(use: Callable[[Link], object]) -> None:
    with pytest.raises(LinkError, match=r"a -> b is not started: call start\(\)"):
        use(Link("127.0.0.1:9", name="a -> b"))


def test_a_bind_host_that_is_not_this_machines_is_refused_with_the_remedy() -> None:
    with pytest.raises(
        LinkError, match=r"cannot listen on 192\.0\.2\.1:0.*Remedy: give a bind host"
    ):
        Link("127.0.0.1:9", name="a -> b", bind_host="192.0.2.1").start()


@pytest.mark.parametrize("upstream", ["no-port-here", "host:", ":5432", "host:port"])
def test_a_malformed_upstream_is_refused(upstream: str) -> None:
    with pytest.raises(LinkError, match="is not an address of the form host:port"):
        Link(upstream)
