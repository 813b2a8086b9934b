"""Stacks: some services booted with what they need, on one backend, for the tests that ask.

The modules: ``request`` (:class:`StackRequest`, the boot waves), ``marker`` (the
signature of ``@pytest.mark.stack``), ``replicas`` (several processes or containers of
one service, :class:`ReplicaSet`), ``stack`` (:class:`Stack`, plain code usable without
pytest), ``session`` (a session's backend and its stacks), ``view`` (:class:`StackView`,
what a test gets), ``on_demand`` (:class:`ServiceStacks`, stacks that fixtures ask for by
service name), ``report`` (what a failed test's report carries).
"""

from __future__ import annotations

from harness.stacks.on_demand import ServiceStacks
from harness.stacks.replicas import ReplicaSet
from harness.stacks.request import StackRequest, boot_waves
from harness.stacks.session import BackendSession
from harness.stacks.stack import MockEndpoint, Stack
from harness.stacks.view import StackView

__all__ = [
    "BackendSession",
    "MockEndpoint",
    "ReplicaSet",
    "ServiceStacks",
    "Stack",
    "StackRequest",
    "StackView",
    "boot_waves",
]
