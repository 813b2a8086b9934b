"""Channels from one service to another."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

# After the callee comes back, reconnect within ~0.1-1 s instead of gRPC's default
# backoff (1 s growing to 120 s), so that a restarted dependency is used again at
# once; calls made while it is down still fail fast (no wait_for_ready).
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def service_channel(
    address: str, interceptors: Sequence[grpc.aio.ClientInterceptor] = ()
) -> grpc.aio.Channel:
    """An insecure channel to another service of the backend (inside its network)."""
    return grpc.aio.insecure_channel(address, options=RECONNECT_OPTIONS, interceptors=interceptors)
