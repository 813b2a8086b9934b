"""What a test gets from the ``stack`` fixture: the stack, and channels, stubs and HTTP
clients opened for this test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import httpx

from harness.browser import browser_client
from harness.contracts.providers import checked_channel
from harness.faults.postgres_control import PostgresControl
from harness.faults.proxy import Link
from harness.faults.service_control import ServiceControl
from harness.stacks.stack import Stack

__all__ = [
    "BALANCING_OPTIONS",
    "RECONNECT_OPTIONS",
    "StackView",
]


StubT = TypeVar("StubT")

# Reconnect within ~0.1-1 s of a restarted service, not gRPC's default 1-120 s backoff.
# Not grpc.min_reconnect_backoff_ms: it is gRPC's minimum connect timeout, and at 100 ms
# a handshake slower than that under load failed every attempt (servicekit.channels).
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
# A channel to several replicas spreads its calls over them, as the services' own
# channels do (servicekit.channels), instead of sending them all down one connection.
BALANCING_OPTIONS = (("grpc.lb_policy_name", "round_robin"),)


@dataclass
class StackView:
    """What a test gets: the stack, channels and stubs opened for this test."""

    stack: Stack
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    def address(self, name: str, replica: int | None = None) -> str:
        """Where the test reaches a service: host:port; of several replicas a gRPC
        target naming them all, or with ``replica`` that one's host:port."""
        return self.stack.address(name, replica)

    def url(self, name: str, replica: int | None = None) -> str:
        """``http://host:port`` of a booted service (of one replica of it, ``replica``,
        when it runs several), reachable from the test."""
        return f"http://{self.stack.address(name, replica)}"

    def http(self, name: str, replica: int | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client on an HTTP service (e.g. the gateway), closed when the test
        ends. Each call is a new browser: its own cookies, kept as a browser keeps them
        on a developer machine (Secure cookies work over http://127.0.0.1; see
        :mod:`harness.browser`). Redirects are not followed: a test looks at each."""
        client = browser_client(self.url(name, replica), **kwargs)
        self._clients.append(client)
        return client

    def channel(self, name: str, replica: int | None = None) -> grpc.aio.Channel:
        """An asyncio channel to a service or mock, closed when the test ends. To a
        service of several replicas, its calls go round robin over them, or with
        ``replica`` all to that one.

        Its unary calls are held to the RPCs' declared status codes
        (:class:`~harness.contracts.DeclaredStatusCheck`): an answer its contract does not
        declare fails the test with :class:`~harness.errors.UndeclaredStatusError`."""
        address = self.stack.address(name, replica)
        channel = self._channels.get(address)
        if channel is None:
            # Own subchannels: gRPC shares them process-wide by address, and one left in
            # reconnect backoff by an earlier test (after a kill) would fail this one.
            options: list[tuple[str, str | int]] = [
                ("grpc.use_local_subchannel_pool", 1),
                *RECONNECT_OPTIONS,
            ]
            if "," in address:  # ipv4:...,...: several replicas
                options.extend(BALANCING_OPTIONS)
            channel = checked_channel(address, options=options)
            self._channels[address] = channel
        return channel

    def stub(
        self,
        name: str,
        stub_class: Callable[[grpc.aio.Channel], StubT],
        replica: int | None = None,
    ) -> StubT:
        """A generated stub on :meth:`channel`: ``stub("dummy", DummyServiceStub)`` is typed
        as the asyncio flavour, ``DummyServiceAsyncStub``."""
        return stub_class(self.channel(name, replica))

    def mock(self, name: str) -> Any:
        return self.stack.mock(name)

    def link(self, caller: str, callee: str) -> Link:
        """The fault link from ``caller`` to ``callee`` (a service, or ``"postgres"``),
        asked for with ``@pytest.mark.stack(..., links=[(caller, callee)])``; restored
        before each test."""
        return self.stack.link(caller, callee)

    @property
    def postgres(self) -> PostgresControl:
        """The stack's Postgres, to stop, kill and start again (the harness starts it again
        after the test if it is left down)."""
        return self.stack.postgres

    def service(self, name: str, replica: int | None = None) -> ServiceControl:
        """A booted service's control (:class:`harness.ServiceControl`): ``kill()``,
        ``stop()``, ``start()``, ``restart()`` and ``akill()``... that leave the event loop
        running; of every replica of it, or with ``replica`` of that one."""
        return self.stack.service(name, replica)

    def stop(self, name: str, replica: int | None = None) -> None:
        self.stack.stop(name, replica)

    def kill(self, name: str, replica: int | None = None) -> None:
        self.stack.kill(name, replica)

    def start(self, name: str, replica: int | None = None) -> None:
        self.stack.start(name, replica)

    def restart(self, name: str, replica: int | None = None) -> None:
        self.stack.restart(name, replica)

    def logs(self, name: str, lines: int = 50, replica: int | None = None) -> str:
        return self.stack.logs(name, lines, replica)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()
