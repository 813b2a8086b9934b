"""A TCP fault proxy: what Toxiproxy gives testcontainers users, in the test process.

    with Link("127.0.0.1:50051", name="dummy -> user") as link:
        ...  # point the caller at link.address
        link.latency(0.2)       # every chunk waits 0.2 s in each direction
        link.cut()              # new connections refused, open ones reset
        link.restore()          # a clean link again

A :class:`Link` listens on one address and forwards each connection it accepts to its
upstream. Its faults apply to the connections already open and to new ones:

- ``latency(seconds, jitter=)``: each chunk is held ``seconds`` (± ``jitter``) before it
  is passed on, in each direction, in order (a call's round trip grows by twice that);
- ``bandwidth(bytes_per_second)``: each direction of each connection passes at most that;
- ``drop()``: a blackhole: connections are accepted but nothing is forwarded; what is
  held is neither lost nor reordered (TCP would deliver it after a partition heals);
- ``reset()``: every open connection is reset (RST on both sides: ``SO_LINGER`` 0);
- ``cut()``: new connections are refused (nothing listens) and open ones reset;
- ``restore()``: none of the above.

It runs on an event loop of its own thread (:class:`~harness._loop.BackgroundLoop`), like
the harness's other servers, so synchronous tests and fixtures drive it as well as
asynchronous ones; every method returns once the fault is in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from harness._loop import BackgroundLoop
from harness.errors import LinkError
from harness.faults.journal import FaultJournal

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Link", "LinkStats"]

# Bounds what one direction of one connection holds while latency delays it: the
# reading side waits (TCP flow control) rather than the proxy buffering without end.
_CHUNK = 64 * 1024
_HELD_CHUNKS = 64
_CONNECT_TIMEOUT = 5.0
_CONTROL_TIMEOUT = 10.0
# A bandwidth limit passes data in slices of this share of a second, so that a large
# chunk trickles instead of passing at once and then waiting a long time.
_BANDWIDTH_SLICE_SECONDS = 0.05


@dataclass(frozen=True)
class LinkStats:
    """What went through a link since it started (or since :meth:`Link.clear_stats`)."""

    connections: int  # accepted
    open_connections: int
    bytes_upstream: int  # from the callers to the upstream
    bytes_downstream: int  # from the upstream back to the callers


def _split(address: str) -> tuple[str, int]:
    host, separator, port = address.rpartition(":")
    if not separator or not host or not port.isdigit():
        raise LinkError(f"{address!r} is not an address of the form host:port")
    return host.strip("[]"), int(port)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN: SO_LINGER with a zero timeout, then an abortive close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    """One accepted connection and, once connected, its upstream."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None

    def reset(self) -> None:
        _abort(self.client)
        if self.upstream is not None:
            _abort(self.upstream)


class Link:
    """A TCP proxy from ``bind_host:port`` to ``upstream``, with faults on demand.

    ``upstream`` is ``host:port``, or a function that gives it: asked at each new
    connection, for an upstream whose address moves (a container restarted on another
    published port). Callers elsewhere may name this machine differently from
    ``bind_host`` (a container reaches the docker bridge as ``host.docker.internal``):
    ``advertised_host`` is that name, and :attr:`advertised_address` the address to give
    them. Each fault and restore is written to ``journal`` when one is given (failure
    reports show it).
    """

    def __init__(
        self,
        upstream: str | Callable[[], str],
        *,
        name: str = "",
        bind_host: str = "127.0.0.1",
        advertised_host: str | None = None,
        port: int = 0,
        journal: FaultJournal | None = None,
    ) -> None:
        if isinstance(upstream, str):
            _split(upstream)  # a malformed address is an error now, not at each connection
        self._upstream = upstream
        self.name = name or f"link to {upstream if isinstance(upstream, str) else 'upstream'}"
        self.bind_host = bind_host
        self.advertised_host = advertised_host or bind_host
        self._port = port
        self._journal = journal
        self._loop: BackgroundLoop | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # one per accepted connection
        self._flowing: asyncio.Event | None = None  # made on the link's loop
        self._latency = 0.0
        self._jitter = 0.0
        self._bytes_per_second: int | None = None
        self._dropped = False
        self._cut = False
        self._accepted = 0
        self._bytes_upstream = 0
        self._bytes_downstream = 0
        self._random = random.Random()  # noqa: S311 - jitter, not secrets

    # ------------------------------------------------------------------- life

    def start(self) -> Self:
        """Listen (on a free port unless one was given); returns once it accepts."""
        if self._loop is not None:
            return self
        loop = BackgroundLoop(f"harness-link-{self._port or 'new'}").__enter__()
        try:
            loop.run(self._open(), timeout=_CONTROL_TIMEOUT)
        except BaseException:
            loop.close()
            raise
        self._loop = loop
        return self

    def close(self) -> None:
        """Stop listening, reset every connection, stop the link's thread."""
        if self._loop is None:
            return
        try:
            self._loop.run(self._shut(), timeout=_CONTROL_TIMEOUT)
        finally:
            self._loop.close()
            self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._loop is None:
            raise LinkError(f"{self.name} is not started: call start() or use it in a with block")
        return self._port

    @property
    def address(self) -> str:
        """host:port of the link, from this machine."""
        return f"{self.bind_host}:{self.port}"

    @property
    def advertised_address(self) -> str:
        """host:port of the link, as the callers it serves name it."""
        return f"{self.advertised_host}:{self.port}"

    @property
    def upstream(self) -> str:
        """Where the link forwards to, now."""
        return self._upstream if isinstance(self._upstream, str) else self._upstream()

    # ----------------------------------------------------------------- faults

    def latency(self, seconds: float, jitter: float = 0.0) -> None:
        """Hold every chunk ``seconds`` ± ``jitter`` (uniformly) before passing it on, in
        each direction; order is kept. ``latency(0)`` removes it."""
        if seconds < 0 or jitter < 0 or jitter > seconds:
            raise ValueError(
                f"{self.name}: latency({seconds}, jitter={jitter}): give seconds >= 0 and "
                "0 <= jitter <= seconds"
            )
        self._control(self._set_latency(seconds, jitter))
        self._record(f"latency {seconds:g} s" + (f" ± {jitter:g} s" if jitter else ""))

    def bandwidth(self, bytes_per_second: int) -> None:
        """Let each direction of each connection pass at most ``bytes_per_second``."""
        if bytes_per_second <= 0:
            raise ValueError(
                f"{self.name}: bandwidth({bytes_per_second}): give a positive number of "
                "bytes per second (restore() lifts the limit)"
            )
        self._control(self._set_bandwidth(bytes_per_second))
        self._record(f"bandwidth {bytes_per_second} B/s")

    def drop(self) -> None:
        """Blackhole: accept connections, forward nothing, until :meth:`restore`."""
        self._control(self._set_dropped(True))
        self._record("drop (blackhole)")

    def reset(self) -> None:
        """Reset (RST) every open connection; new connections are still accepted."""
        count = self._control(self._reset_all())
        self._record(f"reset {count} connection{'' if count == 1 else 's'}")

    def cut(self) -> None:
        """Refuse new connections (nothing listens) and reset the open ones."""
        count = self._control(self._cut_link())
        self._record(f"cut ({count} open connection{'' if count == 1 else 's'} reset)")

    def restore(self) -> None:
        """A clean link again: no latency, no bandwidth limit, listening, forwarding.
        What a drop held is passed on; connections a cut or reset closed stay closed."""
        if self.faults:
            self._control(self._restore())
            self._record("restore")

    @property
    def faults(self) -> tuple[str, ...]:
        """The faults in force, in words (empty: a clean link)."""
        active = []
        if self._cut:
            active.append("cut")
        if self._dropped:
            active.append("drop (blackhole)")
        if self._latency:
            jitter = f" ± {self._jitter:g} s" if self._jitter else ""
            active.append(f"latency {self._latency:g} s{jitter}")
        if self._bytes_per_second is not None:
            active.append(f"bandwidth {self._bytes_per_second} B/s")
        return tuple(active)

    # ------------------------------------------------------------------ stats

    @property
    def stats(self) -> LinkStats:
        return LinkStats(
            connections=self._accepted,
            open_connections=len(self._connections),
            bytes_upstream=self._bytes_upstream,
            bytes_downstream=self._bytes_downstream,
        )

    def clear_stats(self) -> None:
        """Count from zero again (open connections are still counted as open)."""
        self._control(self._clear_stats())  # on the loop's thread, which counts

    async def _clear_stats(self) -> int:
        self._accepted = 0
        self._bytes_upstream = 0
        self._bytes_downstream = 0
        return 0

    # --------------------------------------------------------------- internals

    def _control(self, coroutine: Coroutine[Any, Any, int]) -> int:
        if self._loop is None:
            coroutine.close()  # never to run
            raise LinkError(f"{self.name} is not started: call start() or use it in a with block")
        return self._loop.run(coroutine, timeout=_CONTROL_TIMEOUT)

    def _record(self, action: str) -> None:
        if self._journal is not None:
            self._journal.record(self.name, action)

    async def _open(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.bind_host, self._port, reuse_address=True
            )
        except OSError as error:
            raise LinkError(
                f"{self.name} cannot listen on {self.bind_host}:{self._port}: {error}. "
                + (
                    "Remedy: another process took the port while the link was cut; "
                    "close the link and make a new one"
                    if self._port
                    else "Remedy: give a bind host that is an address of this machine"
                )
            ) from error
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._reset_all()
        assert self._flowing is not None
        self._flowing.set()  # held connections notice they are reset, and end
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=_CONTROL_TIMEOUT / 2)

    async def _set_latency(self, seconds: float, jitter: float) -> int:
        self._latency, self._jitter = seconds, jitter
        return 0

    async def _set_bandwidth(self, bytes_per_second: int) -> int:
        self._bytes_per_second = bytes_per_second
        return 0

    async def _set_dropped(self, dropped: bool) -> int:
        assert self._flowing is not None
        self._dropped = dropped
        if dropped:
            self._flowing.clear()
        else:
            self._flowing.set()
        return 0

    async def _reset_all(self) -> int:
        # not those a fault already closed, whose tasks are still winding down
        connections = [c for c in self._connections if not c.client.transport.is_closing()]
        for connection in connections:
            connection.reset()
        return len(connections)

    async def _cut_link(self) -> int:
        self._cut = True
        if self._server is not None:
            self._server.close()
            self._server = None
        return await self._reset_all()

    async def _restore(self) -> int:
        self._latency, self._jitter, self._bytes_per_second = 0.0, 0.0, None
        await self._set_dropped(False)
        if self._cut:
            await self._listen()  # the same port: SO_REUSEADDR, and callers know it
            self._cut = False
        return 0

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        connection = _Connection(client)
        self._connections.add(connection)
        self._accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            assert self._flowing is not None
            await self._flowing.wait()  # a blackhole holds new connections too
            if self._cut or client.transport.is_closing():
                _abort(client)  # reset or cut while held, or accepted just before a cut
                return
            try:
                host, port = _split(self.upstream)
                upstream_reader, upstream = await asyncio.wait_for(
                    asyncio.open_connection(host, port), _CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError, LinkError):
                # The upstream is down: the caller sees its connection reset, the
                # closest a proxy that accepted it can come to "refused".
                _abort(client)
                return
            connection.upstream = upstream
            await asyncio.gather(
                self._pump(client_reader, upstream, connection, upstream=True),
                self._pump(upstream_reader, client, connection, upstream=False),
            )
        finally:
            self._tasks.discard(task)
            self._connections.discard(connection)
            for writer in (client, connection.upstream):
                if writer is not None and not writer.transport.is_closing():
                    writer.close()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        connection: _Connection,
        *,
        upstream: bool,
    ) -> None:
        """One direction: a reader that stamps each chunk with when it may leave, and a
        writer that waits for that moment, so that latency delays without adding up."""
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_HELD_CHUNKS)
        loop = asyncio.get_running_loop()
        assert self._flowing is not None
        flowing = self._flowing

        async def read() -> None:
            try:
                while True:
                    await flowing.wait()
                    chunk = await source.read(_CHUNK)
                    delay = self._latency + self._random.uniform(-self._jitter, self._jitter)
                    await held.put((loop.time() + max(0.0, delay), chunk))
                    if not chunk:
                        return
            except (ConnectionError, OSError):
                await held.put((loop.time(), b""))
                connection.reset()

        async def write() -> None:
            while True:
                leave_at, chunk = await held.get()
                wait = leave_at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await flowing.wait()
                if not chunk:
                    if not sink.transport.is_closing() and sink.can_write_eof():
                        with contextlib.suppress(OSError):
                            sink.write_eof()  # half-close: the other direction goes on
                    return
                await self._send(sink, chunk, upstream=upstream)

        reader = asyncio.ensure_future(read())
        try:
            await write()
        except (ConnectionError, OSError):
            connection.reset()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _send(self, sink: asyncio.StreamWriter, chunk: bytes, *, upstream: bool) -> None:
        view = memoryview(chunk)
        while view:
            rate = self._bytes_per_second
            piece = view if rate is None else view[: max(1, int(rate * _BANDWIDTH_SLICE_SECONDS))]
            # counted before it is handed over: the receiver may have it at once
            if upstream:
                self._bytes_upstream += len(piece)
            else:
                self._bytes_downstream += len(piece)
            sink.write(piece)
            await sink.drain()
            if rate is not None:
                await asyncio.sleep(len(piece) / rate)
            view = view[len(piece) :]
