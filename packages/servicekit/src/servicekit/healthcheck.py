"""``python -m servicekit.healthcheck [HOST:PORT] [SERVICE]``: exit 0 when the server serves.

The container health check of every service image: one gRPC health Check with a
deadline, status 0 on SERVING and 1 otherwise (refused, NOT_SERVING, timed out),
with one line on stderr saying which. ``--http URL`` checks an HTTP service (the
gateway) instead: status 0 when GET URL answers 200.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str, timeout: float) -> str | None:
    """None when ``service`` at ``address`` is SERVING, else what is wrong."""
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as error:
            # the error raised by a call is also a grpc.Call, which has code and details
            call: grpc.Call = error  # type: ignore[assignment]
            return f"{call.code().name}: {call.details()}"
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
    return None


def check_http(url: str, timeout: float) -> str | None:
    """None when GET ``url`` answers 200, else what is wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a local URL
            status = int(response.status)
    except (OSError, urllib.error.URLError) as error:
        return str(error)
    return None if status == 200 else f"HTTP {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("address", nargs="?", default="127.0.0.1:50051")
    parser.add_argument("service", nargs="?", default="", help="'' means the whole server")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--http", metavar="URL", help="check an HTTP service: GET URL is 200")
    args = parser.parse_args(argv)
    if args.http:
        problem = check_http(args.http, args.timeout)
        if problem is not None:
            print(f"unhealthy: {args.http}: {problem}", file=sys.stderr)
            return 1
        return 0
    problem = check(args.address, args.service, args.timeout)
    if problem is not None:
        print(f"unhealthy: {args.address} {args.service or '(server)'}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
