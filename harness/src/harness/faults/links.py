"""Which links a stack may put between its services: checked before anything boots.

``@pytest.mark.stack("dummy", links=[("dummy", "user"), ("user", "postgres")])`` asks
for a :class:`~harness.faults.Link` from each caller to what it calls: a service (booted
or mocked) or, by the name ``"postgres"``, its own database. The caller is given the
link's address instead of the callee's, so every byte between them crosses the link.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from harness.errors import StackError
from harness.services import ServiceSpec

__all__ = ["POSTGRES", "check_links", "link_name"]

POSTGRES = "postgres"  # the callee name of a link from a service to its database


def link_name(caller: str, callee: str) -> str:
    return f"{caller} -> {callee}"


def check_links(
    specs: Mapping[str, ServiceSpec],
    booted: Collection[str],
    links: Sequence[tuple[str, str]],
) -> None:
    """Raise :class:`~harness.errors.StackError` naming each link that cannot be made."""
    problems = []
    pairs: list[tuple[str, str]] = []
    for link in links:
        if not (
            isinstance(link, tuple | list)
            and len(link) == 2
            and all(isinstance(end, str) for end in link)
        ):
            problems.append(f"{link!r} is not a pair (caller, callee) of service names")
            continue
        caller, callee = link
        pairs.append((caller, callee))
        name = link_name(caller, callee)
        if caller not in booted:
            problems.append(
                f"{name}: {caller!r} is not a service this stack boots (it boots "
                f"{sorted(booted)}; a mock calls nothing)"
            )
        elif callee == POSTGRES:
            if specs[caller].database is None:
                problems.append(f"{name}: {caller} has no database")
        elif callee not in specs[caller].calls:
            problems.append(
                f"{name}: {caller} does not call {callee!r} (it calls "
                f"{sorted(specs[caller].calls) or 'nothing'}, and has "
                f"{'a database: ' + repr(POSTGRES) if specs[caller].database else 'no database'})"
            )
    duplicates = sorted({link_name(*pair) for pair in pairs if pairs.count(pair) > 1})
    if duplicates:
        problems.append(f"asked for more than once: {', '.join(duplicates)}")
    if problems:
        raise StackError("links that cannot be made:\n  - " + "\n  - ".join(problems))
