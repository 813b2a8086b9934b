"""Benchmark of requests through the gateway: the whole backend booted as a harness stack
(Postgres, auth, user, dummy, gateway), then timed HTTP requests from one client.

    uv run python scripts/bench_gateway.py                               # process backend
    uv run python scripts/bench_gateway.py --backend docker --requests 1000 --concurrency 16

Two routes, each a different depth: ``GET /user/me`` (gateway -> auth.ValidateSession,
user.GetUser) and ``POST /entities`` (gateway -> auth.ValidateSession, dummy.CreateEntity
-> user.GetUser, an INSERT). For each: latency of sequential requests (median, p95) and
throughput with ``--concurrency`` requests in flight. The client runs on the same
machine as every service (2 cores here): the figures are the whole backend's on one box,
not the gateway's alone. Bounded: ``--requests`` per measurement, and each measurement
stops at ``--time-limit`` seconds. Tracing is off (no OTLP endpoint), as without a
collector.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import httpx
from bench_stack import booted

from harness.services import workspace_services

ROOT = Path(__file__).resolve().parent.parent
CSRF = {"X-Requested-With": "bench"}

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def me(client: httpx.AsyncClient, index: int) -> httpx.Response:
    return await client.get("/user/me")


async def create(client: httpx.AsyncClient, index: int) -> httpx.Response:
    return await client.post("/entities", json={"name": f"bench {index}"})


async def sequential(
    client: httpx.AsyncClient, send: Send, count: int, limit: float
) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + limit
    for index in range(count):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        answer = await send(client, index)
        latencies.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return latencies


async def concurrent(
    client: httpx.AsyncClient, send: Send, count: int, concurrency: int, limit: float
) -> tuple[int, float]:
    """Requests done and seconds taken, ``concurrency`` in flight."""
    next_index = 0
    done = 0
    deadline = time.monotonic() + limit

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < count and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            (await send(client, index)).raise_for_status()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - started


async def measure(url: str, requests: int, concurrency: int, limit: float) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=CSRF, timeout=30, limits=limits, trust_env=False
    ) as client:
        login = await client.post("/auth/dev/login", json={"email": "bench@example.com"})
        login.raise_for_status()
        for name, send in (("GET /user/me", me), ("POST /entities", create)):
            await sequential(client, send, 20, limit)  # warm-up: connections, caches
            latencies = sorted(await sequential(client, send, requests, limit))
            p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
            done, seconds = await concurrent(client, send, requests, concurrency, limit)
            print(
                f"{name:<16} sequential median {statistics.median(latencies):6.2f} ms  "
                f"p95 {p95:6.2f} ms  (n={len(latencies)})   "
                f"{concurrency} in flight: {done / seconds:7.0f} req/s  (n={done})"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=["process", "docker"], default="process")
    parser.add_argument("--requests", type=int, default=500, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per measurement")
    parser.add_argument("--postgres-image", default="kit/postgres:15")
    args = parser.parse_args()
    # the development login: a session without an OAuth provider
    specs = [
        replace(spec, env={**spec.env, "GATEWAY_ENVIRONMENT": "local"})
        if spec.name == "gateway"
        else spec
        for spec in workspace_services(ROOT)
    ]
    with booted(args.backend, args.postgres_image, ("gateway",), specs) as (stack, _, seconds):
        print(f"{args.backend}: Postgres + auth + user + dummy + gateway booted in {seconds:.1f} s")
        url = f"http://{stack.address('gateway')}"
        asyncio.run(measure(url, args.requests, args.concurrency, args.time_limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
