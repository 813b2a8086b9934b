"""A provider's side of consumer-driven contracts: replay what its consumers recorded.

::

    states = ProviderStates("user")

    @states.state("a user exists")
    async def a_user_exists(stub, id: str, email: str) -> dict[str, str]:
        created = await stub.CreateUser(user_pb2.CreateUserRequest(email=email))
        return {"id": created.user.id}   # the real value of a parameter it made anew

    @pytest.mark.parametrize("recorded", states.recorded(), ids=str)
    async def test_what_consumers_rely_on(user_stub, recorded):
        await states.verify(recorded, user_stub)

Each state handler is called with the stub (or ``verify(..., using=...)``) and the
state's parameters; what it returns
maps parameters to the values the provider really has (an id it generated, a token), and
the replay puts them in the request and the expected response wherever the recorded value
stood. The response must have the status recorded and, for each field the recorded
response set, the same value (matcher ``exact``) or a value of the same JSON type
(``type``). A failure names the consumer and the test that recorded the interaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory

from harness.contracts.interactions import as_dict, leaves, rewrite

__all__ = [
    "ContractMismatch",
    "ProviderStates",
    "Recorded",
    "StateHandler",
]

StateHandler = Callable[..., Awaitable[Mapping[str, str] | None]]


class ContractMismatch(AssertionError):
    """The provider did not answer what a consumer's recorded interaction relies on."""


@dataclass(frozen=True)
class Recorded:
    """One interaction a consumer recorded, as read from its file."""

    consumer: str
    service: str
    index: int
    entry: dict[str, Any]

    def __str__(self) -> str:
        test = self.entry["test"].split("::", 1)[-1]
        return f"{self.consumer}:{self.entry['rpc']}:{test}:{self.index}"


def _matches(expected: Any, actual: Any, matcher: str) -> bool:
    if matcher == "type":
        return type(expected) is type(actual)
    return bool(expected == actual)


class ProviderStates:
    """The provider states a provider can set up, by name, and the replay of its consumers'
    interactions (``contracts/<provider>/consumers/*.json`` next to the suite)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self._handlers: dict[str, StateHandler] = {}

    def state(self, name: str) -> Callable[[StateHandler], StateHandler]:
        """Declare the handler of the state ``name``."""

        def declare(handler: StateHandler) -> StateHandler:
            if name in self._handlers:
                raise ValueError(f"the provider state {name!r} is declared twice")
            self._handlers[name] = handler
            return handler

        return declare

    @property
    def declared(self) -> frozenset[str]:
        """The names of the states this provider has handlers for."""
        return frozenset(self._handlers)

    def unsupported(self) -> list[str]:
        """Each state a recorded interaction assumes that no handler here sets up, with
        the consumer and test that assume it (what :meth:`verify` would fail on)."""
        return [
            f"{item.consumer}: {item.entry['test']} assumes {given['state']!r}"
            for item in self.recorded()
            for given in item.entry["given"]
            if given["state"] not in self._handlers
        ]

    def recorded(self) -> list[Recorded]:
        """Every interaction of every consumer's file in ``<folder>/consumers``, in order."""
        found = []
        for path in sorted((self.folder / "consumers").glob("*.json")):
            try:
                document = json.loads(path.read_text())
                entries = document["interactions"]
                service = document["service"]
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path} is not an interactions file: {error}") from error
            found += [Recorded(path.stem, service, i, entry) for i, entry in enumerate(entries)]
        return found

    async def verify(self, recorded: Recorded, stub: object, *, using: object = None) -> None:
        """Set up the states, replay the request on ``stub``, compare the answer.

        The state handlers are called with ``using`` (what they need to set a state up,
        e.g. the stub of a service the provider asks) or, without it, with ``stub``."""
        __tracebackhide__ = True
        entry = recorded.entry
        real: dict[str, str] = {}
        for given in entry["given"]:
            handler = self._handlers.get(given["state"])
            if handler is None:
                known = ", ".join(repr(name) for name in sorted(self._handlers)) or "none"
                raise ContractMismatch(
                    f"{self._origin(recorded)} assumes the provider state "
                    f"{given['state']!r}, which the provider declares no handler for "
                    f"(declared: {known}); add @states.state({given['state']!r})"
                )
            made = await handler(stub if using is None else using, **given["params"]) or {}
            for key, value in made.items():
                recorded_value = given["params"].get(key)
                if recorded_value is not None and recorded_value != value:
                    real[recorded_value] = value

        def substitute(value: Any) -> Any:
            return real.get(value, value) if isinstance(value, str) else value

        method = descriptor_pool.Default().FindServiceByName(recorded.service)
        rpc = method.methods_by_name[entry["rpc"]]
        request = message_factory.GetMessageClass(rpc.input_type)()
        json_format.ParseDict(rewrite(entry["request"], substitute), request)
        try:
            response = await getattr(stub, entry["rpc"])(request)
            status, actual = "OK", as_dict(response, defaults=True)
        except grpc.aio.AioRpcError as error:
            status, actual = error.code().name, {}
        problems = []
        if status != entry["status"]:
            problems.append(f"status {status}, recorded {entry['status']}")
        if status == "OK" and "response" in entry:
            got = dict(leaves(actual))
            matchers = entry.get("matchers", {})
            for path, value in leaves(rewrite(entry["response"], substitute)):
                matcher = matchers.get(path, "exact")
                if path not in got:
                    problems.append(f"{path}: not set, recorded {value!r}")
                elif not _matches(value, got[path], matcher):
                    problems.append(f"{path}: {got[path]!r}, recorded {value!r} ({matcher})")
        if problems:
            listed = "\n".join(f"  - {problem}" for problem in problems)
            raise ContractMismatch(
                f"{self._origin(recorded)}: the provider answered otherwise:\n{listed}\n"
                f"request: {json.dumps(entry['request'])}"
            )

    @staticmethod
    def _origin(recorded: Recorded) -> str:
        entry = recorded.entry
        return (
            f"consumer {recorded.consumer!r} (its test {entry['test']}) relies on "
            f"{recorded.service}/{entry['rpc']}"
        )
