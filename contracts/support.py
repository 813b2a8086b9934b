"""Helpers shared by the contract suites: they speak only gRPC."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

# Codes a contract allows for bad input; UNKNOWN and INTERNAL are never among them.
CLIENT_ERROR_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}


async def expect_status(
    call: Awaitable[Any], code: grpc.StatusCode, *, mentions: str | None = None
) -> grpc.aio.AioRpcError:
    """Await ``call`` and assert it failed with ``code`` and a message naming ``mentions``."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    error = raised.value
    assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
    details = error.details() or ""
    assert details, "an error must say what is wrong"
    if mentions is not None:
        assert mentions in details, f"{details!r} should mention {mentions!r}"
    return error
