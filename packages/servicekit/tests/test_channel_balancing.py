"""A service channel spreads its calls over every address its target resolves to: what
lets a caller use every replica behind a Kubernetes headless Service (one DNS name, an
address per ready pod). Two servers on loopback stand for two replicas; the target
lists both (gRPC's ``ipv4:`` scheme, the shape a DNS answer with two records takes).
And a server with a maximum connection age makes its callers connect again (and so
resolve again) without failing a call."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest

from servicekit.channels import service_channel
from servicekit.server import ServiceRegistration, create_server

pytestmark = pytest.mark.integration  # binds loopback sockets


async def start_replica(name: str, answered: Counter[str]) -> tuple[grpc.aio.Server, int]:
    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        answered[name] += 1
        return name.encode()

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "test.Replica", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture
async def two_replicas() -> AsyncIterator[tuple[str, Counter[str]]]:
    answered: Counter[str] = Counter()
    first, first_port = await start_replica("first", answered)
    second, second_port = await start_replica("second", answered)
    try:
        yield f"ipv4:127.0.0.1:{first_port},127.0.0.1:{second_port}", answered
    finally:
        await first.stop(grace=0)
        await second.stop(grace=0)


async def test_calls_are_spread_over_every_replica(
    two_replicas: tuple[str, Counter[str]],
) -> None:
    target, answered = two_replicas
    channel = service_channel(target)
    try:
        who = channel.unary_unary("/test.Replica/Who", None, None)  # bytes in, bytes out
        # Until both connections are up, the ready one takes every call: bounded wait.
        for _ in range(200):
            await who(b"", timeout=5)
            if len(answered) == 2:
                break
        assert set(answered) == {"first", "second"}, "every call went to one replica"
        answered.clear()
        for _ in range(20):
            await who(b"", timeout=5)
        assert answered == Counter({"first": 10, "second": 10})
    finally:
        await channel.close(None)


def peer_service(peers: list[str]) -> ServiceRegistration:
    """test.Peer/Who: records the caller's address (its connection) and answers OK."""

    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        peers.append(context.peer())
        return b"ok"

    handler = grpc.method_handlers_generic_handler(
        "test.Peer", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )
    return ServiceRegistration(
        "test.Peer", lambda server: server.add_generic_rpc_handlers((handler,))
    )


async def test_an_aged_connection_is_replaced_without_failing_a_call() -> None:
    """With a maximum connection age the server closes each connection gracefully once
    that old; the caller connects again (resolving the name again, which is how it finds
    replicas added since), and no call fails on the way."""
    peers: list[str] = []
    server = create_server(
        "127.0.0.1:0",
        [peer_service(peers)],
        max_connection_age_seconds=0.3,
        max_connection_age_grace_seconds=1.0,
    )
    await server.start()
    channel = service_channel(f"127.0.0.1:{server.port}")
    try:
        who = channel.unary_unary("/test.Peer/Who", None, None)
        async with asyncio.timeout(30):
            while len(set(peers)) < 3:
                assert await who(b"", timeout=5) == b"ok"
                await asyncio.sleep(0.02)
    finally:
        await channel.close(None)
        await server.stop(0)
    assert len(peers) > len(set(peers))  # several calls on each connection


async def test_without_a_maximum_age_one_connection_serves_every_call() -> None:
    peers: list[str] = []
    server = create_server("127.0.0.1:0", [peer_service(peers)])
    await server.start()
    channel = service_channel(f"127.0.0.1:{server.port}")
    try:
        who = channel.unary_unary("/test.Peer/Who", None, None)
        for _ in range(30):
            assert await who(b"", timeout=5) == b"ok"
            await asyncio.sleep(0.02)
    finally:
        await channel.close(None)
        await server.stop(0)
    assert len(set(peers)) == 1


async def test_a_connection_slow_to_set_up_is_waited_for_not_failed() -> None:
    """A callee whose HTTP/2 handshake takes 300 ms (a loaded machine, a far network):
    the first call still gets through. (``grpc.min_reconnect_backoff_ms`` is also gRPC's
    minimum connect timeout: set to 100 ms, every attempt gave up before the server's
    SETTINGS came, and calls failed UNAVAILABLE, "timed out before receiving SETTINGS".)"""
    answered: Counter[str] = Counter()
    server, port = await start_replica("slow", answered)

    async def delayed_relay(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
    ) -> None:
        try:
            first = True
            while data := await reader.read(65536):
                if first:
                    await asyncio.sleep(delay)
                    first = False
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(
            delayed_relay(client_reader, server_writer, 0.0),
            delayed_relay(server_reader, client_writer, 0.3),  # the server's SETTINGS, late
        )

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    proxy_port = proxy.sockets[0].getsockname()[1]
    channel = service_channel(f"127.0.0.1:{proxy_port}")
    try:
        who = channel.unary_unary("/test.Replica/Who", None, None)
        assert await who(b"", timeout=10) == b"slow"
        assert answered == {"slow": 1}
    finally:
        await channel.close(None)
        proxy.close()
        await server.stop(grace=0)
