"""The status codes an RPC declares: the ``(kit.v1.may_return)`` option of its contract.

Read from the method's descriptor options; the option's extension is registered in the
default pool when a service's ``_pb2`` module is imported (it imports
``kit.v1.options_pb2``), so the harness needs no import of the kit's own generated code
and works for any proto. An RPC without the option declares nothing
(``None``): the checks then fall back to refusing only what no contract promises.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pool

from harness.errors import ContractError

if TYPE_CHECKING:
    from google.protobuf.descriptor import MethodDescriptor

__all__ = [
    "CALLER_SIDE_CODES",
    "MAY_RETURN",
    "NEVER_PROMISED",
    "declared_codes",
    "declared_codes_of_path",
    "describe_declared",
]

MAY_RETURN = "kit.v1.may_return"
"""The full name of the option (contracts/kit/v1/options.proto)."""

NEVER_PROMISED = frozenset({grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
"""What an RPC without the option may still not fail with: OK is not a failure, and
every contract of the kit says "No request, however malformed, gets UNKNOWN or INTERNAL"."""

CALLER_SIDE_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})
"""What any call can end with on the caller's side, whatever the provider declares: its
own deadline passing, its own cancellation. A mock may fail with them (to stand for
that), and the provider check does not count them against the provider."""

_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def declared_codes(method: MethodDescriptor) -> frozenset[grpc.StatusCode] | None:
    """The error codes ``method`` declares in ``(kit.v1.may_return)``; None without the option.

    Raises :class:`ContractError` when the option lists OK (not an error) or a number that
    is no status code, or lists nothing.
    """
    options = method.GetOptions()
    # The option's extension as the options message knows it: protobuf parses every
    # descriptor's options into the default pool's MethodOptions class, whichever pool
    # the descriptor is in, so that is where the extension must be looked up.
    try:
        # Any: types-protobuf types extensions by their generated module, which a
        # descriptor found in the pool has no static type for.
        extension: Any = options.DESCRIPTOR.file.pool.FindExtensionByName(MAY_RETURN)
    except KeyError:
        return None  # no proto imported in this process uses the kit's options
    if not options.HasExtension(extension):
        return None
    numbers: list[int] = list(options.Extensions[extension].codes)
    where = f"{method.full_name}: option ({MAY_RETURN})"
    unknown = [n for n in numbers if n not in _CODES_BY_NUMBER]
    if unknown:
        raise ContractError(f"{where} lists {unknown}, which are not gRPC status codes")
    codes = frozenset(_CODES_BY_NUMBER[n] for n in numbers)
    if grpc.StatusCode.OK in codes:
        raise ContractError(f"{where} lists OK: list only the error codes the RPC may answer")
    if not codes:
        raise ContractError(
            f"{where} lists no code: list the error codes the RPC may answer, e.g. "
            "{ codes: [INVALID_ARGUMENT] }"
        )
    return codes


@functools.lru_cache(maxsize=512)
def declared_codes_of_path(path: str) -> tuple[bool, frozenset[grpc.StatusCode] | None]:
    """``(known, codes)`` for a method path ``/package.Service/Method`` in the default pool.

    ``known`` is False when the pool has no such method (its ``_pb2`` module was never
    imported in this process): nothing can be checked then.
    """
    _, service_name, method_name = path.split("/", 2) if path.count("/") == 2 else ("", "", "")
    try:
        service = descriptor_pool.Default().FindServiceByName(service_name)
    except KeyError:
        return False, None
    method = service.methods_by_name.get(method_name)
    if method is None:
        return False, None
    return True, declared_codes(method)


def describe_declared(codes: frozenset[grpc.StatusCode] | None) -> str:
    """How a message names what an RPC declares."""
    if codes is None:
        return f"it has no ({MAY_RETURN}) option"
    listed = ", ".join(sorted(code.name for code in codes))
    return f"its ({MAY_RETURN}) lists {listed}"
