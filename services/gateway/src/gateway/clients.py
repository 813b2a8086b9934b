"""The gateway's gRPC clients of auth, user and dummy, with the channels under them."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from auth import AuthClient
from dummy import DummyClient
from gateway.settings import GatewaySettings
from servicekit.channels import service_channel
from user import UserClient


@dataclass(frozen=True)
class Clients:
    """What the routes call; built on any channels (tests pass channels to mocks)."""

    auth: AuthClient
    user: UserClient
    dummy: DummyClient
    channels: dict[str, grpc.aio.Channel]  # service name -> channel, for readiness

    @classmethod
    def on_channels(
        cls,
        *,
        auth: grpc.aio.Channel,
        user: grpc.aio.Channel,
        dummy: grpc.aio.Channel,
        timeout: float,
    ) -> Clients:
        return cls(
            auth=AuthClient(auth, timeout=timeout),
            user=UserClient(user, timeout=timeout),
            dummy=DummyClient(dummy, timeout=timeout),
            channels={"auth": auth, "user": user, "dummy": dummy},
        )

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close(None)


def connect(settings: GatewaySettings) -> Clients:
    """Traced channels to the three services (call inside the event loop that uses them)."""
    return Clients.on_channels(
        auth=service_channel(settings.auth_address),
        user=service_channel(settings.user_address),
        dummy=service_channel(settings.dummy_address),
        timeout=settings.grpc_timeout_seconds,
    )
