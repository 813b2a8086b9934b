"""The auth service's public boundary: what other services may use (client and messages)."""

from auth.client import AuthClient
from auth.v1 import auth_pb2, auth_pb2_grpc

__all__ = ["AuthClient", "auth_pb2", "auth_pb2_grpc"]
