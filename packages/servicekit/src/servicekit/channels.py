"""Channels from one service to another, traced.

:func:`service_channel` returns a :class:`TracedChannel`: a ``grpc.aio`` channel whose
unary calls each get a CLIENT span (named ``/<package.Service>/<Method>``, with
``rpc.system``, ``rpc.service``, ``rpc.method`` and ``rpc.grpc.status_code``; an error
for any code but OK, as the OpenTelemetry RPC conventions have it) and send
the caller's trace context (W3C ``traceparent``, through the configured propagator),
so one trace crosses from service to service. The span wraps the call directly,
without ``grpc.aio`` client interceptors, which cost an extra task and call object
per call. Health checks and reflection are not traced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    MetadataType = Sequence[tuple[str, str | bytes]]

# After the callee comes back, reconnect within ~0.1-1 s instead of gRPC's default
# backoff (1 s growing to 120 s), so that a restarted dependency is used again at
# once; calls made while it is down still fail fast (no wait_for_ready). Not
# grpc.min_reconnect_backoff_ms: despite its name it is gRPC's minimum connect timeout
# (20 s by default), and at 100 ms a handshake slower than that (a loaded machine, a far
# network) failed every attempt: "timed out before receiving SETTINGS frame".
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
# Calls spread over every address the callee's name resolves to, one connection each,
# instead of all going down the one connection of gRPC's default (pick_first): behind a
# Kubernetes headless Service the name resolves to every ready replica. One address
# (a host name of compose, 127.0.0.1 in tests) behaves as before.
BALANCING_OPTIONS = (("grpc.lb_policy_name", "round_robin"),)

# Polled by the harness, load balancers and orchestrators: a span per poll would
# bury the calls that matter.
UNTRACED_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def is_traced(method: str | bytes) -> bool:
    """Whether calls of ``method`` (``/package.Service/Method``) get spans."""
    if isinstance(method, bytes):  # grpc.aio clients may hand the method over as bytes
        method = method.decode()
    service = method.lstrip("/").partition("/")[0]
    return service not in UNTRACED_SERVICES


class _TracedUnaryUnary:
    """A unary multicallable whose calls are CLIENT spans carrying ``traceparent``."""

    def __init__(self, inner: Any, method: str, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._method = method
        self._tracer = tracer
        service, _, name = method.lstrip("/").partition("/")
        self._attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    async def __call__(
        self, request: Any, *, metadata: MetadataType | None = None, **options: Any
    ) -> Any:
        span = self._tracer.start_span(self._method, None, SpanKind.CLIENT, self._attributes)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, trace.set_span_in_context(span))
        outgoing = [*(metadata or ()), *carrier.items()]
        code = grpc.StatusCode.OK
        try:
            return await self._inner(request, metadata=outgoing, **options)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            raise
        except BaseException:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:  # to a client, any failure is one
                span.set_status(Status(StatusCode.ERROR, code.name))
            span.end()


class TracedChannel:
    """A ``grpc.aio.Channel`` whose unary calls are traced (see the module docstring);
    everything else (``close``, ``channel_ready``, ``get_state``...) is the channel's."""

    def __init__(self, channel: grpc.aio.Channel, tracer: trace.Tracer) -> None:
        self._channel = channel
        self._tracer = tracer

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._channel.unary_unary(method, *args, **kwargs)
        if not is_traced(method):
            return inner
        return _TracedUnaryUnary(inner, method, self._tracer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    async def __aenter__(self) -> TracedChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._channel.close(None)


def traced(
    channel: grpc.aio.Channel, tracer_provider: trace.TracerProvider | None = None
) -> grpc.aio.Channel:
    """``channel`` with traced calls; ``tracer_provider`` None means the global one,
    which the runner installs. Typed as a channel: that is all stubs need of it."""
    tracer = trace.get_tracer("servicekit.channels", tracer_provider=tracer_provider)
    return TracedChannel(channel, tracer)  # type: ignore[return-value]


def service_channel(
    address: str, *, tracer_provider: trace.TracerProvider | None = None
) -> grpc.aio.Channel:
    """An insecure, traced channel to another service of the backend (inside its network),
    its calls spread over every address ``address`` resolves to (round robin)."""
    options = (*RECONNECT_OPTIONS, *BALANCING_OPTIONS)
    return traced(grpc.aio.insecure_channel(address, options=options), tracer_provider)
