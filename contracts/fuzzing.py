"""Property-based fuzzing of the gRPC services from their contracts.

The strategies are built from the services' descriptors: every field of every request
message gets any value the wire allows (numbers at their bounds, enums outside their
range, timestamps at and beyond the limits, long and odd strings, random bytes where a
token or id is expected, empty messages), mixed with values known to be valid so that
a request gets past its first check. What an RPC may answer comes from the contract
itself (:func:`rpc_status_codes`: each RPC's ``(kit.v1.may_return)`` option), never from
the implementation.

Reproducible: Hypothesis draws from ``FUZZ_SEED`` (fixed unless set), ``FUZZ_EXAMPLES``
requests per service (1,000 unless set); no example database is kept.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import string
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from auth.v1 import auth_pb2
from dummy.v1 import dummy_pb2
from harness import declared_codes
from user.v1 import user_pb2

T = TypeVar("T")

SERVICES: dict[str, ServiceDescriptor] = {
    "auth": auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    "user": user_pb2.DESCRIPTOR.services_by_name["UserService"],
    "dummy": dummy_pb2.DESCRIPTOR.services_by_name["DummyService"],
}

FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "20261205"))
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))

# Findings the fuzzer makes today whose fixes are under way (issue 10). Each entry
# turns exactly that (RPC, code) into an expected failure of the test that finds it;
# any other finding fails. Remove an entry when its fix lands: the test then checks it.
KNOWN_DEFECTS: dict[tuple[str, grpc.StatusCode], str] = {}


def fuzz_settings(max_examples: int = FUZZ_EXAMPLES) -> settings:
    """Settings for a fuzz run: bounded, no example database, no deadline (each example
    is a network round trip; the test is about answers, not time)."""
    return settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        derandomize=False,  # the seed is FUZZ_SEED, given with hypothesis.seed
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=False,
    )


def rpc_status_codes(service_name: str) -> dict[str, frozenset[grpc.StatusCode]]:
    """The codes each RPC of a service may answer, OK included: its contract's
    ``(kit.v1.may_return)`` option (read by :func:`harness.declared_codes`).

    Every RPC of the kit's contracts carries the option; one without it is an error here,
    since the fuzzer would have nothing to hold the answers to.
    """
    table: dict[str, frozenset[grpc.StatusCode]] = {}
    for method in SERVICES[service_name].methods:
        declared = declared_codes(method)
        if declared is None:
            raise ValueError(
                f"{method.full_name} has no (kit.v1.may_return) option: list the codes it "
                "may answer in its contract"
            )
        table[method.name] = declared | {grpc.StatusCode.OK}
    return table


# ---------------------------------------------------------------------------------------
# Values

INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

# Characters a text field is most likely to mishandle: C0 and C1 controls, bidi
# controls, zero-width and other invisible format characters, separators, private use,
# noncharacters, tags, combining marks, blanks that look like nothing, right-to-left
# letters, astral characters and what looks like markup or SQL.
ODD_CHARACTERS = (
    [chr(c) for c in range(0x20)]
    + ["\x7f"]
    + [chr(c) for c in range(0x80, 0xA0)]
    + list("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    + list("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u034f")
    + list("\u2028\u2029\u0085")
    + ["\ue000", "\uf8ff", "\U000f0000", "\uffff", "\ufffe", "\ufdd0", "\U0010ffff"]
    + ["\U000e0001", "\U000e0041", "\u0301", "\u0308", "\u3164", "\u2800", "\u115f"]
    + list("\u05d0\u0627\u00e9\u00df\u0130\u212a")
    + ["\U0001f600", "\U0001f468", "\ufffd"]
    + list("'\";%_\\<>&{}")
)

# Any code point a protobuf string can carry: everything but the surrogates.
any_character = st.characters(exclude_categories=["Cs"])

odd_text = st.text(st.sampled_from(ODD_CHARACTERS) | any_character, min_size=1, max_size=40)
huge_text = st.builds(
    lambda unit, count: unit * count,
    st.sampled_from(["x", "\u00e9", "\U0001f600", "\u200b", "a\x00", "\u0301"]),
    st.sampled_from([201, 256, 2001, 4097, 70_000]),
)
uuid_text = (
    st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()) | st.uuids().map(lambda u: u.hex)
)
random_bytes_text = st.binary(max_size=64).map(
    lambda raw: base64.urlsafe_b64encode(raw).decode()
) | st.binary(min_size=1, max_size=64).map(lambda raw: raw.decode("latin-1"))

# Timestamps: the limits of google.protobuf.Timestamp (years 1 and 9999), beyond them,
# negative, and nanos outside [0, 1e9).
TIMESTAMP_SECONDS = [0, -1, 1, -62135596800, -62135596801, 253402300799, 253402300800]
TIMESTAMP_NANOS = [0, -1, 999_999_999, 1_000_000_000, -(2**31), 2**31 - 1]


def _base64_bytes(token: str) -> bytes | None:
    """The bytes of a URL-safe base64 token, padded or not; None if it is not one."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None


def forged_token(real: str) -> st.SearchStrategy[str]:
    """Tokens made from a real one: its fields replaced when it decodes as base64 of a
    JSON object (each value by a timestamp at or beyond the limits, another UUID or odd
    text), its decoded bytes overwritten (any binary format: a field set to its extremes)
    and encoded back as it was, its characters changed or cut, or junk appended."""
    mangled: list[st.SearchStrategy[str]] = [
        st.builds(lambda junk: real + junk, st.sampled_from(["=", "==", "A", "\n", ".", "!"])),
        st.integers(0, max(len(real) - 1, 0)).map(lambda cut: real[:cut]),
        st.tuples(st.integers(0, max(len(real) - 1, 0)), st.sampled_from(string.ascii_letters)).map(
            lambda edit: real[: edit[0]] + edit[1] + real[edit[0] + 1 :]
        ),
    ]
    raw = _base64_bytes(real)
    if raw:
        padded = real.endswith("=")

        def overwrite(edits: list[tuple[int, bytes]]) -> str:
            changed = bytearray(raw)
            for start, run in edits:
                changed[start : start + len(run)] = run
            encoded = base64.urlsafe_b64encode(bytes(changed)[: len(raw)]).decode()
            return encoded if padded else encoded.rstrip("=")

        runs = st.sampled_from(
            [b"\x00" * 8, b"\xff" * 8, b"\x7f" + b"\xff" * 7, b"\x80" + b"\x00" * 7]
        )
        edit = st.tuples(st.integers(0, len(raw) - 1), runs | st.binary(min_size=1, max_size=8))
        mangled.insert(0, st.lists(edit, min_size=1, max_size=3).map(overwrite))
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload:
        extreme_times = st.sampled_from(
            [
                "0001-01-01T00:00:00+14:00",
                "0001-01-01T00:00:00-14:00",
                "9999-12-31T23:59:59.999999-14:00",
                "9999-12-31T23:59:59+14:00",
                "1970-01-01T00:00:00",
                "2026-02-30T00:00:00+00:00",
            ]
        )
        other: st.SearchStrategy[object] = st.one_of(
            uuid_text, odd_text, st.integers(), st.none(), st.just([])
        )

        def forge(key: str, value: object) -> str:
            changed = {**payload, key: value}
            return base64.urlsafe_b64encode(json.dumps(changed).encode()).decode()

        keys = st.sampled_from(sorted(payload))
        # its fields are what a server trusts once a token decodes
        with_time = st.builds(forge, keys, extreme_times)
        # first: Hypothesis favours the first branches of one_of
        return st.one_of(with_time, st.builds(forge, keys, other), *mangled)
    return st.one_of(mangled)


def string_values(
    field: FieldDescriptor, known: Mapping[str, Sequence[str]]
) -> st.SearchStrategy[str]:
    """Any string, with the values known to be valid for this field name (and forgeries
    of them) so that the other fields of a request get their turn."""
    anything = st.one_of(
        st.just(""),
        st.text(any_character, max_size=30),
        odd_text,
        huge_text,
        uuid_text,
        random_bytes_text,
    )
    values = known.get(field.name, ())
    if not values:
        return anything
    forged = st.sampled_from(values).flatmap(forged_token)
    near_known = st.one_of(
        forged,
        forged,
        st.builds(lambda value, odd: value + odd, st.sampled_from(values), odd_text),
        st.builds(lambda value, odd: odd + value, st.sampled_from(values), odd_text),
    )
    # mostly known values: each of the other fields then gets past its own check
    return st.one_of(st.sampled_from(values), st.sampled_from(values), near_known, anything)


def scalar_values(
    field: FieldDescriptor, known: Mapping[str, Sequence[str]]
) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return string_values(field, known)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=256)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return st.floats(width=32 if field.type == FieldDescriptor.TYPE_FLOAT else 64)
    if field.type == FieldDescriptor.TYPE_ENUM:
        # proto3 enums are open: any int32 travels, defined or not
        assert field.enum_type is not None  # an enum field always has its type
        defined = [value.number for value in field.enum_type.values]
        return st.sampled_from(defined) | st.integers(-(2**31), 2**31 - 1)
    low, high = INT_BOUNDS[field.type]
    return st.sampled_from([low, high, -1, 0, 1]) | st.integers(-2, 300) | st.integers(low, high)


def message_values(
    descriptor: Descriptor, known: Mapping[str, Sequence[str]], depth: int = 0
) -> st.SearchStrategy[Message]:
    """Messages of this type: each field unset or any value, recursively (two levels)."""
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(
            GetMessageClass(descriptor),
            seconds=st.sampled_from(TIMESTAMP_SECONDS) | st.integers(-(2**63), 2**63 - 1),
            nanos=st.sampled_from(TIMESTAMP_NANOS) | st.integers(-(2**31), 2**31 - 1),
        )
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 2 or field.message_type is None:
                continue
            single = message_values(field.message_type, known, depth + 1)
        else:
            single = scalar_values(field, known)
        # a field with known values is always drawn (its strategy includes the empty
        # string, which is what unset means without presence): requests then mostly get
        # past their first check; the others may be left unset, so empty messages occur
        chosen = required if field.name in known and not field.has_presence else optional
        chosen[field.name] = st.lists(single, max_size=4) if field.is_repeated else single

    def build(values: dict[str, Any]) -> Message:
        message = GetMessageClass(descriptor)()
        for name, value in values.items():
            field = descriptor.fields_by_name[name]
            target = getattr(message, name)
            if field.is_repeated:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries(required, optional=optional).map(build)


def requests(
    service: ServiceDescriptor, known: Mapping[str, Sequence[str]]
) -> st.SearchStrategy[tuple[MethodDescriptor, Message]]:
    """A request to any RPC of the service."""
    return st.one_of(
        [
            st.tuples(st.just(method), message_values(method.input_type, known))
            for method in service.methods
        ]
    )


# ---------------------------------------------------------------------------------------
# Running


def raw_rpc(channel: grpc.aio.Channel, service: ServiceDescriptor, method: MethodDescriptor) -> Any:
    """The RPC on ``channel``, sending and receiving bytes (any message type)."""
    return channel.unary_unary(
        f"/{service.full_name}/{method.name}",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )


async def status_of(rpc: Any, request: Message) -> tuple[grpc.StatusCode, str]:
    try:
        await rpc(request.SerializeToString(), timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


class LoopBridge:
    """Runs coroutines on the test's event loop from the thread Hypothesis runs in.

    The services under test are served on that loop, so the examples cannot block it:
    the test awaits the whole Hypothesis run in a worker thread, whose examples hand
    each call back to the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def run(self, coroutine: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout=60)


def describe(message: Message) -> str:
    """A request as protobuf text, long strings shortened (a 70,000-character name)."""
    fields = []
    for field, value in message.ListFields():
        text = repr(value) if not isinstance(value, Message) else f"{{{describe(value)}}}"
        if len(text) > 120:
            text = f"{text[:100]}... ({len(text)} chars)"
        fields.append(f"{field.name}={text}")
    return ", ".join(fields) or "(empty)"


async def fuzz_service(
    channel: grpc.aio.Channel,
    service_name: str,
    known: Mapping[str, Sequence[str]],
    *,
    max_examples: int = FUZZ_EXAMPLES,
) -> dict[tuple[str, grpc.StatusCode], str]:
    """Send ``max_examples`` generated requests to the service behind ``channel``.

    Raises AssertionError (with the request Hypothesis shrank it to, the answer and the
    seed) for an answer the RPC's contract does not declare, unless it is one of
    :data:`KNOWN_DEFECTS`: those are returned, the first request of each.
    """
    service = SERVICES[service_name]
    allowed = rpc_status_codes(service_name)
    bridge = LoopBridge(asyncio.get_running_loop())
    known_findings: dict[tuple[str, grpc.StatusCode], str] = {}

    @seed(FUZZ_SEED)
    @fuzz_settings(max_examples)
    @given(requests(service, known))
    def answer_is_declared(call: tuple[MethodDescriptor, Message]) -> None:
        method, request = call
        code, details = bridge.run(status_of(raw_rpc(channel, service, method), request))
        if code in allowed[method.name]:
            return
        finding = f"{method.name}({describe(request)}) -> {code.name}: {details}"
        if (method.name, code) in KNOWN_DEFECTS:
            known_findings.setdefault((method.name, code), finding)
            return
        raise AssertionError(
            f"{finding}\nthe contract declares {sorted(c.name for c in allowed[method.name])}"
            f" (FUZZ_SEED={FUZZ_SEED} FUZZ_EXAMPLES={max_examples})"
        )

    await asyncio.to_thread(answer_is_declared)
    return known_findings
