"""Consumer-driven contracts: what a consumer's tests relied on when they used a generated
mock of a provider, kept as one reviewable file per pair.

While ``--harness-interactions=record`` (or ``check``) is given, every answer a mock gives
in a test that has a consumer (``@pytest.mark.consumer("gateway")``) is recorded: the RPC,
the request, the provider states the test named (``mock.given("a user exists", id=...)``)
and the response or status it got. Answers a
provider cannot be asked for are left out: ``breaks_contract=True``, the caller's side's
codes and UNAVAILABLE. At the end of the run the interactions go to
``contracts/<provider>/consumers/<consumer>.json``, or (``check``) are compared with it.

Deterministic: interactions sorted and deduplicated per test; UUIDs numbered in order of
appearance (``00000000-0000-4000-8000-00000000000N``) and timestamps replaced by one
instant, a response's value of either kind compared by type unless the request or a state
named it (then exactly, after the provider's state handler gave its real value).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from harness.contracts.declared import CALLER_SIDE_CODES

__all__ = [
    "MATCHERS",
    "NOT_RECORDED",
    "RECORDER",
    "Interaction",
    "PairFiles",
    "Recorder",
    "TestRef",
    "as_dict",
    "leaves",
    "merge_file",
    "normalize",
    "placeholder",
    "provider_of",
    "rewrite",
]

# Codes no provider state can make a real provider answer on demand.
NOT_RECORDED = CALLER_SIDE_CODES | {grpc.StatusCode.UNAVAILABLE}

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
INSTANT = "1970-01-01T00:00:00Z"
MATCHERS = ("exact", "type")
FORMAT = 1


def placeholder(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


def provider_of(service_full_name: str) -> str:
    """``user.v1.UserService`` -> ``user`` (the folder of contracts/ it lives in)."""
    return service_full_name.split(".", 1)[0]


@dataclass(frozen=True)
class TestRef:
    nodeid: str
    consumer: str


@dataclass(frozen=True)
class Interaction:
    """One answer a mock gave, as the consumer's test relied on it (raw, not normalized)."""

    test: TestRef
    service: str
    rpc: str
    given: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    request: dict[str, Any]
    response: dict[str, Any] | None  # None when the answer was an error status
    status: str
    matchers: tuple[tuple[str, str], ...] = ()  # the test's own, by field path


def as_dict(message: Message, *, defaults: bool = False) -> dict[str, Any]:
    """The message's JSON mapping with proto field names; with ``defaults``, fields at
    their default value too (an answer to compare: ``false`` is a value there)."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=defaults
    )


class Recorder:
    """Where mocks put their answers while a test with a consumer runs (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: TestRef | None = None
        self.interactions: list[Interaction] = []
        self.ran: set[str] = set()  # nodeids of the tests with a consumer that ran

    def start_test(self, test: TestRef | None) -> None:
        with self._lock:
            self.current = test
            if test is not None:
                self.ran.add(test.nodeid)

    def record(
        self,
        service: str,
        rpc: str,
        given: list[tuple[str, dict[str, str]]],
        request: Message,
        response: Message | None,
        code: grpc.StatusCode,
        matchers: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            test = self.current
            if test is None or code in NOT_RECORDED:
                return
            states = tuple((name, tuple(sorted(params.items()))) for name, params in given)
            self.interactions.append(
                Interaction(
                    test,
                    service,
                    rpc,
                    states,
                    as_dict(request),
                    None if response is None else as_dict(response),
                    code.name,
                    tuple(sorted((matchers or {}).items())),
                )
            )


RECORDER = Recorder()


# -- normalizing --------------------------------------------------------------------------


def leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for key in value for leaf in leaves(value[key], f"{path}.{key}".lstrip("."))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in leaves(item, f"{path}[{i}]")]
    return [(path, value)]


def rewrite(value: Any, change: Any) -> Any:
    if isinstance(value, dict):
        return {key: rewrite(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [rewrite(item, change) for item in value]
    return change(value)


def normalize(interaction: Interaction) -> dict[str, Any]:
    """The interaction as the file keeps it: UUIDs numbered, timestamps one instant, and the
    response's matchers (``type`` for a UUID no request or state named, and timestamps)."""
    numbers: dict[str, str] = {}

    def stable(value: Any) -> Any:
        if isinstance(value, str) and _UUID.match(value):
            return numbers.setdefault(value.lower(), placeholder(len(numbers) + 1))
        if isinstance(value, str) and _TIMESTAMP.match(value):
            return INSTANT
        return value

    given = [
        {"state": name, "params": {key: stable(value) for key, value in params}}
        for name, params in interaction.given
    ]
    request = rewrite(interaction.request, stable)
    named = set(numbers.values())
    entry: dict[str, Any] = {
        "test": interaction.test.nodeid,
        "rpc": interaction.rpc,
        "given": given,
        "request": request,
        "status": interaction.status,
    }
    if interaction.response is not None:
        raw = dict(leaves(interaction.response))
        response = rewrite(interaction.response, stable)
        matchers = dict(interaction.matchers)
        for path, value in leaves(response):
            if path in matchers:
                continue
            original = raw[path]
            varies = isinstance(original, str) and (
                _TIMESTAMP.match(original) or (_UUID.match(original) and value not in named)
            )
            if varies:
                matchers[path] = "type"
        entry["response"] = response
        entry["matchers"] = {
            key: value for key, value in sorted(matchers.items()) if value != "exact"
        }
    return entry


def _key(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True)


def merge_file(
    path: Path,
    *,
    consumer: str,
    provider: str,
    service: str,
    recorded: list[dict[str, Any]],
    ran: set[str],
    collected: set[str],
) -> tuple[str, str]:
    """(what the file holds now, what it should hold): the entries of tests that ran this
    session replaced by what they recorded; entries of tests that no longer exist (their
    file was collected but they were not) dropped; the others kept."""
    old_text = path.read_text() if path.exists() else ""
    kept: list[dict[str, Any]] = []
    if old_text:
        try:
            old = json.loads(old_text)
            entries = list(old["interactions"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not an interactions file: {error}") from error
        collected_files = {nodeid.split("::", 1)[0] for nodeid in collected}
        for entry in entries:
            test = entry.get("test", "")
            gone = test.split("::", 1)[0] in collected_files and test not in collected
            if test not in ran and not gone:
                kept.append(entry)
    unique = {_key(entry): entry for entry in [*kept, *recorded]}
    ordered = sorted(unique.values(), key=lambda e: (e["test"], e["rpc"], _key(e)))
    document = {
        "format": FORMAT,
        "consumer": consumer,
        "provider": provider,
        "service": service,
        "interactions": ordered,
    }
    new_text = json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    if not ordered:
        new_text = ""
    return old_text, new_text


@dataclass
class PairFiles:
    """Every pair's file, computed from one session's recordings."""

    root: Path
    recorded: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, interaction: Interaction) -> None:
        provider = provider_of(interaction.service)
        key = (interaction.test.consumer, provider, interaction.service)
        self.recorded.setdefault(key, []).append(normalize(interaction))

    def path(self, consumer: str, provider: str) -> Path:
        return self.root / provider / "consumers" / f"{consumer}.json"

    def files(self) -> dict[Path, tuple[str, str, str]]:
        """Every pair file to write or check: recorded now, or there already."""
        found: dict[Path, tuple[str, str, str]] = {}
        for existing in sorted(self.root.glob("*/consumers/*.json")):
            try:
                document = json.loads(existing.read_text())
                service = str(document["service"])
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{existing} is not an interactions file: {error}") from error
            found[existing] = (existing.stem, existing.parent.parent.name, service)
        for consumer, provider, service in self.recorded:
            found[self.path(consumer, provider)] = (consumer, provider, service)
        return found

    def finish(self, *, write: bool, ran: set[str], collected: set[str]) -> list[str]:
        """Write the files (``write``) or list those that differ from what was recorded."""
        stale = []
        for path, (consumer, provider, service) in sorted(self.files().items()):
            old, new = merge_file(
                path,
                consumer=consumer,
                provider=provider,
                service=service,
                recorded=self.recorded.get((consumer, provider, service), []),
                ran=ran,
                collected=collected,
            )
            if old == new:
                continue
            if not write:
                stale.append(str(path))
            elif new:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(new)
            else:
                path.unlink()
        return stale
