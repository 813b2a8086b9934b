"""Liveness (the process answers) and readiness (every downstream service serves)."""

from __future__ import annotations

import asyncio

import grpc
from fastapi import APIRouter, Request, Response
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway import models
from gateway.deps import get_clients, get_settings

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the gateway process answers")
async def healthz() -> models.Health:
    return models.Health(status="ok")


async def _check(channel: grpc.aio.Channel, deadline_seconds: float) -> str:
    try:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=deadline_seconds
        )
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


@router.get(
    "/readyz",
    summary="Readiness: every downstream service answers its gRPC health check SERVING",
    responses={503: {"model": models.Readiness, "description": "a service is not serving"}},
)
async def readyz(request: Request, response: Response) -> models.Readiness:
    channels = get_clients(request).channels
    timeout = get_settings(request).readiness_timeout_seconds
    states = await asyncio.gather(*(_check(channel, timeout) for channel in channels.values()))
    services = dict(zip(channels, states, strict=True))
    ready = all(state == "SERVING" for state in states)
    if not ready:
        response.status_code = 503
    return models.Readiness(status="ready" if ready else "not_ready", services=services)
