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


# Characters the text policy (README, "Text fields") refuses in every free-text field of
# every service, and the code point the INVALID_ARGUMENT message must name. The suites
# put each inside an otherwise valid value of each field.
REFUSED_CHARACTERS = {
    "BEL": ("\x07", "U+0007"),
    "ESC colour sequence": ("\x1b[31m", "U+001B"),
    "NUL": ("\x00", "U+0000"),
    "C1 control": ("\x9b", "U+009B"),
    "right-to-left override": ("\u202e", "U+202E"),
    "left-to-right isolate": ("\u2066", "U+2066"),
    "zero-width space": ("\u200b", "U+200B"),
    "byte order mark": ("\ufeff", "U+FEFF"),
    "line separator": ("\u2028", "U+2028"),
    "private use": ("\ue000", "U+E000"),
    "noncharacter": ("\uffff", "U+FFFF"),
}

# Values a required text field refuses although no character in them is refused alone.
INVISIBLE_TEXT = {
    "only zero-width characters": ("\u200b\u200c\u200d", "U+200B"),
    "only a zero-width joiner": ("\u200d", "U+200D"),
    "only a Hangul filler": ("\u3164", "visible"),
    "only braille blanks": ("\u2800\u2800", "visible"),
}
