"""The user service's public boundary: what other services may use (client and messages)."""

from user.client import UserClient
from user.v1 import user_pb2, user_pb2_grpc

__all__ = ["UserClient", "user_pb2", "user_pb2_grpc"]
