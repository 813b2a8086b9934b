"""Contracts that machines check: the status codes each RPC declares in its
``(kit.v1.may_return)`` option, and the checks that hold mocks and real services to them.

The modules: ``declared`` (reading the option from a method's descriptor), ``providers``
(:class:`DeclaredStatusCheck`, the client interceptor on the harness's channels, and
:func:`checked_channel`, a channel with it), ``interactions`` (consumer-driven contracts:
what mocks answered, normalized into ``contracts/<provider>/consumers/<consumer>.json``),
``recording`` (``--harness-interactions=record|check``), ``verify``
(:class:`ProviderStates`: a provider's state handlers and the replay). The
mocks' rule (``fails()`` refuses an undeclared code) lives with the mocks and reads
``declared``.
"""

from __future__ import annotations

from harness.contracts.declared import (
    CALLER_SIDE_CODES,
    MAY_RETURN,
    NEVER_PROMISED,
    declared_codes,
    declared_codes_of_path,
    describe_declared,
)
from harness.contracts.providers import DeclaredStatusCheck, checked_channel, undeclared_status
from harness.contracts.verify import ContractMismatch, ProviderStates, Recorded

__all__ = [
    "CALLER_SIDE_CODES",
    "MAY_RETURN",
    "NEVER_PROMISED",
    "ContractMismatch",
    "DeclaredStatusCheck",
    "ProviderStates",
    "Recorded",
    "checked_channel",
    "declared_codes",
    "declared_codes_of_path",
    "describe_declared",
    "undeclared_status",
]
