"""The dummy service's public boundary: what other services may use (client and messages)."""

from dummy.client import DummyClient
from dummy.v1 import dummy_pb2, dummy_pb2_grpc

__all__ = ["DummyClient", "dummy_pb2", "dummy_pb2_grpc"]
