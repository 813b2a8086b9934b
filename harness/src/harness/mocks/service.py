"""A service as a mock sees it, read from its descriptor: its RPCs (with the status codes
each declares), the stub proxy that selects them, and valid metadata."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from harness.contracts.declared import declared_codes
from harness.errors import MockError, UnknownRpcError

if TYPE_CHECKING:
    from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

    # grpc-stubs makes the aio context generic; at run time it is a plain class.
    _Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


__all__ = [
    "PREFIX",
    "Metadata",
    "Rpc",
    "RpcRef",
    "StubProxy",
    "check_metadata",
    "rpcs_of",
    "service_of_stub",
]


Metadata: TypeAlias = tuple[tuple[str, str | bytes], ...]
"""Invocation or trailing metadata: (key, value) pairs in order; ``-bin`` keys have bytes."""

PREFIX = "harness.mocks"


@dataclass(frozen=True)
class Rpc:
    name: str
    path: str
    descriptor: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]
    # The error codes its contract's (kit.v1.may_return) lists; None without the option.
    declared: frozenset[grpc.StatusCode] | None

    @property
    def streaming(self) -> str | None:
        """None for unary-unary, otherwise which side streams (for messages)."""
        client, server = self.descriptor.client_streaming, self.descriptor.server_streaming
        if client and server:
            return "bidirectional-streaming"
        if client:
            return "client-streaming"
        if server:
            return "server-streaming"
        return None


def rpcs_of(service: ServiceDescriptor) -> dict[str, Rpc]:
    return {
        method.name: Rpc(
            name=method.name,
            path=f"/{service.full_name}/{method.name}",
            descriptor=method,
            request_class=message_factory.GetMessageClass(method.input_type),
            response_class=message_factory.GetMessageClass(method.output_type),
            declared=declared_codes(method),
        )
        for method in service.methods
    }


class RpcRef:
    """What the stub proxy gives for an RPC name; only the mock reads it."""

    __slots__ = ("rpc",)

    def __init__(self, rpc: Rpc) -> None:
        self.rpc = rpc

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise MockError(
            f"select the RPC, do not call it: `lambda stub: stub.{self.rpc.name}`, "
            f"not `lambda stub: stub.{self.rpc.name}(...)`"
        )


class StubProxy:
    """Stands in for the generated stub inside selector lambdas."""

    __slots__ = ("_rpcs", "_service")

    def __init__(self, service: str, rpcs: dict[str, Rpc]) -> None:
        self._service = service
        self._rpcs = rpcs

    def __getattr__(self, name: str) -> RpcRef:
        rpc = self._rpcs.get(name)
        if rpc is None:
            known = ", ".join(sorted(self._rpcs)) or "none"
            raise UnknownRpcError(
                f"{self._service} has no RPC {name!r}; its RPCs: {known}", name=name, obj=self
            )
        return RpcRef(rpc)


class _ProbeChannel:
    """Passed to a generated stub's constructor to learn the method paths it calls."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def _record(self, path: str, *args: object, **kwargs: object) -> None:
        self.paths.append(path)

    unary_unary = unary_stream = stream_unary = stream_stream = _record


def service_of_stub(stub: Callable[[grpc.aio.Channel], object]) -> ServiceDescriptor:
    probe = _ProbeChannel()
    try:
        stub(cast("grpc.aio.Channel", probe))
    except Exception as error:
        raise MockError(
            f"{stub!r} is not a generated gRPC stub class (calling it with a channel raised "
            f"{error!r}); pass e.g. user_pb2_grpc.UserServiceStub"
        ) from error
    names = {path.split("/")[1] for path in probe.paths if path.count("/") == 2}
    if len(names) != 1:
        raise MockError(
            f"{stub!r} does not look like a generated stub of one service (method paths: "
            f"{probe.paths}); build the mock from the descriptor instead: "
            "GrpcMock(xxx_pb2.DESCRIPTOR.services_by_name[...])"
        )
    (name,) = names
    try:
        return descriptor_pool.Default().FindServiceByName(name)
    except KeyError:
        raise MockError(
            f"service {name} is not in the default descriptor pool; import its _pb2 module, "
            "or build the mock from its descriptor: GrpcMock(descriptor)"
        ) from None


_METADATA_KEY = re.compile(r"^[0-9a-z_.-]+$")


def check_metadata(metadata: Metadata, what: str) -> Metadata:
    checked = tuple(metadata)
    for pair in checked:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise MockError(f"{what}: expected (key, value) pairs, got {pair!r}")
        key, value = pair
        if not isinstance(key, str) or not _METADATA_KEY.match(key) or key.startswith("grpc-"):
            raise MockError(
                f"{what}: key {key!r} is not a valid metadata key (lower-case letters, "
                "digits, '-', '_', '.'; not 'grpc-...')"
            )
        binary = key.endswith("-bin")
        if binary and not isinstance(value, bytes):
            raise MockError(f"{what}: {key!r} ends with -bin, so its value must be bytes")
        if not binary and not isinstance(value, str):
            raise MockError(f"{what}: {key!r} needs a str value (only -bin keys take bytes)")
    return checked
