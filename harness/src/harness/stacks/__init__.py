"""Stacks: some services booted with what they need, on one backend, for the tests that ask.

The modules: ``request`` (:class:`StackRequest`, the boot waves), ``marker`` (the
signature of ``@pytest.mark.stack``), ``replicas`` (several processes or containers of
one service, :class:`ReplicaSet`), ``stack`` (:class:`Stack`, plain code usable without
pytest), ``session`` (a session's backend and its stacks), ``view`` (:class:`StackView`,
what a test gets), ``report`` (what a failed test's report carries).
"""

from __future__ import annotations

from harness.stacks.replicas import ReplicaSet
from harness.stacks.request import StackRequest, boot_waves
from harness.stacks.session import BackendSession
from harness.stacks.stack import MockEndpoint, Stack
from harness.stacks.view import StackView

__all__ = [
    "BackendSession",
    "MockEndpoint",
    "ReplicaSet",
    "Stack",
    "StackRequest",
    "StackView",
    "boot_waves",
]
