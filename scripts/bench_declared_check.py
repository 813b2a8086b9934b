"""What the provider check (harness.DeclaredStatusCheck) costs per call: the same unary
calls to a mock of the user service through a plain channel and through
``harness.checked_channel``, alternating, printing CPU and wall time per call.

Each call fails with NOT_FOUND (declared by GetUser), so the check looks the RPC up on
every call: the path with the most work. CPU counts the whole process (the client and
the mock's server thread).

    uv run python scripts/bench_declared_check.py [--calls 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable

import grpc

from harness import GrpcMock, checked_channel
from user.v1 import user_pb2, user_pb2_grpc

WARM_UP = 200


async def per_call(make: Callable[[str], grpc.aio.Channel], calls: int) -> tuple[float, float]:
    """(CPU, wall) microseconds per call through a channel made by ``make``."""
    users = GrpcMock.of(user_pb2_grpc.UserServiceStub)
    users.when(lambda stub: stub.GetUser).fails(grpc.StatusCode.NOT_FOUND, "no such user")
    address = await users.astart()
    try:
        async with make(address) as channel:
            stub = user_pb2_grpc.UserServiceStub(channel)
            request = user_pb2.GetUserRequest(id="7")

            async def run(count: int) -> None:
                for _ in range(count):
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await stub.GetUser(request)

            await run(WARM_UP)
            cpu, wall = time.process_time(), time.perf_counter()
            await run(calls)
            return (
                (time.process_time() - cpu) / calls * 1e6,
                (time.perf_counter() - wall) / calls * 1e6,
            )
    finally:
        await users.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    channels: list[tuple[str, Callable[[str], grpc.aio.Channel]]] = [
        ("plain", grpc.aio.insecure_channel),
        ("checked", checked_channel),
    ]
    for _ in range(args.rounds):
        for name, make in channels:
            cpu, wall = await per_call(make, args.calls)
            print(f"{name:8s} {cpu:6.0f} us CPU per call  {wall:6.0f} us wall per call")


if __name__ == "__main__":
    asyncio.run(main())
