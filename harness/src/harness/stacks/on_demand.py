"""Stacks that fixtures ask for by service name (:class:`ServiceStacks`), where a test
does not carry ``@pytest.mark.stack``: what a contract suite's stub fixtures use to reach
the service under test as a process or a container (``--harness-contract-target``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from harness.errors import StackError
from harness.services import ServiceSpec
from harness.stacks.report import RECEIVER_KEY, STACK_KEY
from harness.stacks.request import StackRequest
from harness.stacks.session import BackendSession
from harness.stacks.view import StackView
from harness.traces import TraceReceiver

__all__ = [
    "ServiceStacks",
]


@dataclass
class ServiceStacks:
    """One test's stacks, each asked for by the service it is about.

    ``get("dummy")`` boots dummy with the services it calls on the session's backend
    (once per session; a test gets it clean: databases reset, faults healed) and returns
    its :class:`StackView`; asked again in the same test, the same view. ``env`` sets a
    variant of that service (booted apart, e.g. ``{"AUTH_GOOGLE_CLIENT_ID": ""}``).
    """

    session: BackendSession
    specs: Sequence[ServiceSpec]
    receiver: TraceReceiver
    node: pytest.Item | None = None  # whose failure report gets the stack's logs
    _views: dict[tuple[str, tuple[tuple[str, str], ...]], StackView] = field(default_factory=dict)

    def get(self, service: str, *, env: Mapping[str, str] | None = None) -> StackView:
        variant = tuple(sorted((env or {}).items()))
        key = (service, variant)
        view = self._views.get(key)
        if view is not None:
            return view
        if service not in {spec.name for spec in self.specs}:
            declared = sorted(spec.name for spec in self.specs)
            raise StackError(
                f"no service {service!r} is declared (harness_services declares {declared})"
            )
        specs = [
            dataclasses.replace(spec, env={**spec.env, **dict(variant)})
            if spec.name == service and variant
            else spec
            for spec in self.specs
        ]
        wanted = StackRequest((service,))
        # the stack of @pytest.mark.stack(service), shared with the tests that mark it; a
        # variant is a stack of its own
        shared = None if not variant else (wanted.key, variant)
        booted = self.session.clean_stack(specs, wanted, self.receiver, key=shared)
        if self.node is not None:
            self.node.stash[STACK_KEY] = booted
            self.node.stash[RECEIVER_KEY] = self.receiver
        view = self._views[key] = StackView(booted)
        return view

    def services(self) -> set[str]:
        """The services booted (not mocked) in the stacks this test asked for."""
        return {name for view in self._views.values() for name in view.stack.handles}

    async def aclose(self) -> None:
        """Close the channels and clients the views opened; Postgres up for the next test."""
        for view in self._views.values():
            await view.aclose()
        if self._views:
            self.session.postgres.heal()
        self._views.clear()
