"""Channels from one service to another."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from servicekit.telemetry import client_interceptors

# After the callee comes back, reconnect within ~0.1-1 s instead of gRPC's default
# backoff (1 s growing to 120 s), so that a restarted dependency is used again at
# once; calls made while it is down still fail fast (no wait_for_ready).
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def service_channel(
    address: str, interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None
) -> grpc.aio.Channel:
    """An insecure channel to another service of the backend (inside its network).

    By default its calls are traced and carry the caller's trace context (W3C
    ``traceparent``), so one trace crosses from service to service.
    """
    chosen = client_interceptors() if interceptors is None else interceptors
    return grpc.aio.insecure_channel(address, options=RECONNECT_OPTIONS, interceptors=chosen)
