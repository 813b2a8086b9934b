"""How the kit's service processes run grpcio: the environment every one starts with.

grpcio reads ``GRPC_EXPERIMENTS`` once, when ``grpc`` is first imported, so it cannot be
set from the services' code (their packages import their generated stubs, and so grpc,
before anything else): it goes into their environment instead, in the images (the
generated Dockerfiles' ``ENV``) and in every local process the harness and
``scripts/dev.py`` start (:class:`harness.service_process.ServiceProcess`). A value in
the caller's own environment wins.

``GRPC_EXPERIMENTS`` turns off grpcio's EventEngine for client channels, listeners and
the other endpoints, back to its older poller: there a unary call on grpc.aio costs about
half the context switches (measured with ``perf stat`` on an echo server: 10 per call to
5), and through the whole backend ``scripts/bench_gateway.py`` showed 5-12 % less CPU per
request and the floor's echo 16 % less (README, "Measured"). grpcio logs "Unknown
experiment" and runs with its defaults when a later version drops one of these names; a
test (harness/tests/test_grpc_runtime.py) fails first, on the version in the lock.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["GRPC_RUNTIME_ENV", "with_grpc_runtime"]

GRPC_RUNTIME_ENV: Mapping[str, str] = {
    "GRPC_EXPERIMENTS": "-event_engine_client,-event_engine_listener,"
    "-event_engine_for_all_other_endpoints",
}


def with_grpc_runtime(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with :data:`GRPC_RUNTIME_ENV` where it sets none of those variables."""
    return {**GRPC_RUNTIME_ENV, **environ}
