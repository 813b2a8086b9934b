"""The spans of one request, with assertions on their shape; every failure draws the trace."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NoReturn, Self

import grpc

from harness.errors import TraceAssertionError
from harness.traces.spans import GRPC_CODE_NAMES, Span, SpanKind, SpanStatus

__all__ = [
    "Trace",
]


class Trace:
    """The spans of one request, normally all of one trace id, with assertions on them.

    Every assertion raises :class:`TraceAssertionError` with the trace drawn as a tree.
    """

    def __init__(self, spans: Iterable[Span]) -> None:
        self.spans: tuple[Span, ...] = tuple(sorted(spans, key=_start_order))
        self._by_id = {span.span_id: span for span in self.spans}

    def __repr__(self) -> str:
        return f"Trace({len(self.spans)} spans, trace ids {self.trace_ids})"

    def __len__(self) -> int:
        return len(self.spans)

    # ---------------------------------------------------------------- reading

    @property
    def trace_ids(self) -> list[str]:
        """The trace ids present, in order of their first span's start."""
        return list(dict.fromkeys(span.trace_id for span in self.spans))

    @property
    def trace_id(self) -> str:
        """The trace id, when there is exactly one (else a TraceAssertionError)."""
        __tracebackhide__ = True
        self.assert_single_trace()
        return self.spans[0].trace_id

    @property
    def services(self) -> list[str]:
        """The services that took part, sorted."""
        return sorted({span.service for span in self.spans})

    def instances(self, service: str, rpc: str | None = None) -> dict[str, int]:
        """How many SERVER spans (calls answered; of ``rpc`` when given) each
        instance of ``service`` has, by ``service.instance.id`` (``auth-0``, ``auth-1``
        for a service of several replicas in a stack): which replicas answered."""
        counts: dict[str, int] = {}
        for span in self.spans_matching(rpc, service=service, kind="SERVER"):
            counts[span.instance] = counts.get(span.instance, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def roots(self) -> list[Span]:
        """Spans without a parent."""
        return [span for span in self.spans if span.parent_span_id is None]

    @property
    def orphans(self) -> list[Span]:
        """Spans whose parent is not in this trace."""
        return [
            span
            for span in self.spans
            if span.parent_span_id is not None and span.parent_span_id not in self._by_id
        ]

    def parent(self, span: Span) -> Span | None:
        return None if span.parent_span_id is None else self._by_id.get(span.parent_span_id)

    def children(self, span: Span) -> list[Span]:
        """Direct children, by start time."""
        return [child for child in self.spans if child.parent_span_id == span.span_id]

    def ancestors(self, span: Span) -> Iterator[Span]:
        """Parent, grandparent... as far as the links reach inside this trace."""
        seen = {span.span_id}
        current = self.parent(span)
        while current is not None and current.span_id not in seen:
            yield current
            seen.add(current.span_id)
            current = self.parent(current)

    def spans_matching(
        self, name: str | None = None, *, service: str | None = None, kind: SpanKind | None = None
    ) -> list[Span]:
        return [span for span in self.spans if span.matches(name, service=service, kind=kind)]

    def span(
        self, name: str | None = None, *, service: str | None = None, kind: SpanKind | None = None
    ) -> Span:
        """The one span with ``name`` (and ``service``, ``kind``): for attribute checks."""
        __tracebackhide__ = True
        found = self.spans_matching(name, service=service, kind=kind)
        if len(found) != 1:
            wanted = _describe_query(name, service, kind)
            problem = "no span" if not found else f"{len(found)} spans"
            hint = "" if found else f"; span names present: {self._names()}"
            self.fail(f"{problem} {wanted} (expected exactly one){hint}")
        return found[0]

    # ---------------------------------------------------------------- assertions

    def fail(self, message: str) -> NoReturn:
        __tracebackhide__ = True
        raise TraceAssertionError(f"{message}\n\n{self.render()}")

    def assert_single_trace(self) -> Self:
        """All spans share one trace id (a service that dropped the context starts another)."""
        __tracebackhide__ = True
        ids = self.trace_ids
        if len(ids) != 1:
            self.fail(
                f"expected the spans of one trace, got {len(ids)} trace ids"
                + (f": {', '.join(ids)}" if ids else "")
            )
        return self

    def assert_no_orphans(self, *, remote_parent: str | None = None) -> Self:
        """Every span's parent is in the trace; only roots (no parent) have none.

        ``remote_parent``: a span id known to live outside the receiver (the id of a
        ``traceparent`` a test made up), accepted as a parent.
        """
        __tracebackhide__ = True
        orphans = [span for span in self.orphans if span.parent_span_id != remote_parent]
        if orphans:
            listed = "; ".join(
                f"{span.describe()} -> parent {span.parent_span_id}" for span in orphans
            )
            self.fail(f"{len(orphans)} span(s) whose parent is not in the trace: {listed}")
        return self

    def assert_services(self, expected: Iterable[str], *, exact: bool = True) -> Self:
        """These services took part (``exact``: and no other)."""
        __tracebackhide__ = True
        wanted = set(expected)
        present = set(self.services)
        missing = sorted(wanted - present)
        extra = sorted(present - wanted) if exact else []
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"missing {missing}")
            if extra:
                problems.append(f"unexpected {extra}")
            self.fail(
                f"services {', '.join(problems)}; expected {sorted(wanted)}, "
                f"present {sorted(present)}"
            )
        return self

    def assert_rpc(
        self, method: str, *, service: str | None = None, code: str | None = None
    ) -> Self:
        """A SERVER span for ``method`` (``pkg.Service/Method``), served by ``service``.

        ``code``: the gRPC status name it must have answered (``"OK"``, ``"NOT_FOUND"``...).
        """
        __tracebackhide__ = True
        found = self.spans_matching(method, service=service, kind="SERVER")
        if not found:
            self.fail(
                f"no SERVER span {_describe_query(method, service, None)}; "
                f"span names present: {self._names()}"
            )
        if code is not None:
            self._check_codes(found, method, _code_name(code))
        return self

    def assert_status(
        self, name: str, code: str | grpc.StatusCode | int, *, service: str | None = None
    ) -> Self:
        """The gRPC status of the RPC spans named ``name`` (client and server alike)."""
        __tracebackhide__ = True
        found = [
            span
            for span in self.spans_matching(name, service=service)
            if span.grpc_code is not None
        ]
        if not found:
            self.fail(
                f"no RPC span {_describe_query(name, service, None)} with a gRPC status; "
                f"span names present: {self._names()}"
            )
        self._check_codes(found, name, _code_name(code))
        return self

    def assert_span_status(
        self, name: str, status: SpanStatus, *, service: str | None = None
    ) -> Self:
        """The OpenTelemetry status (UNSET, OK, ERROR) of every span named ``name``."""
        __tracebackhide__ = True
        found = self.spans_matching(name, service=service)
        if not found:
            self.fail(f"no span {_describe_query(name, service, None)}; present: {self._names()}")
        wrong = [span for span in found if span.status != status]
        if wrong:
            self.fail(
                f"expected status {status} for {name!r}, got "
                + ", ".join(f"{span.status} ({span.service})" for span in wrong)
            )
        return self

    def assert_path(self, *names: str) -> Self:
        """Spans with these names exist, each an ancestor of the next (not just a parent).

        E.g. ``assert_path("client span", "dummy.v1.DummyService/CreateEntity",
        "user.v1.UserService/GetUser")``.
        """
        __tracebackhide__ = True
        if not names:
            raise ValueError("assert_path needs at least one span name")
        if self._path_from(None, names) is None:
            self.fail(f"no chain of nested spans {' -> '.join(repr(n) for n in names)}")
        return self

    def _path_from(self, above: Span | None, names: Sequence[str]) -> list[Span] | None:
        if not names:
            return []
        for candidate in self.spans_matching(names[0]):
            if above is not None and above.span_id not in {
                ancestor.span_id for ancestor in self.ancestors(candidate)
            }:
                continue
            rest = self._path_from(candidate, names[1:])
            if rest is not None:
                return [candidate, *rest]
        return None

    def database_spans(self, service: str | None = None) -> list[Span]:
        """The database client spans (see :attr:`Span.db_system`), of ``service`` if given."""
        return [
            span
            for span in self.spans
            if span.db_system is not None and (service is None or span.service == service)
        ]

    def assert_database(
        self, service: str, *, under: str | None = None, system: str | None = None
    ) -> Self:
        """``service`` queried its database in this trace: at least one database span of
        ``service`` (of ``system``, e.g. "postgresql"), and with ``under`` (a span name,
        e.g. the RPC it served), every one of them nested somewhere below such a span."""
        __tracebackhide__ = True
        found = [
            span
            for span in self.database_spans(service)
            if system is None or span.db_system == system
        ]
        if not found:
            what = f"{system} " if system else ""
            self.fail(f"no {what}database span of {service!r} (db.system set) in the trace")
        if under is not None:
            stray = [
                span for span in found if not any(a.matches(under) for a in self.ancestors(span))
            ]
            if stray:
                listed = "; ".join(span.describe() for span in stray)
                self.fail(f"database spans of {service!r} not under {under!r}: {listed}")
        return self

    def _check_codes(self, spans: Sequence[Span], name: str, expected: str) -> None:
        __tracebackhide__ = True
        wrong = [span for span in spans if span.grpc_code != expected]
        if wrong:
            got = ", ".join(f"{span.grpc_code} ({span.kind} in {span.service})" for span in wrong)
            self.fail(f"expected gRPC status {expected} for {name!r}, got {got}")

    def _names(self) -> list[str]:
        return sorted({span.name for span in self.spans})

    # ---------------------------------------------------------------- rendering

    def render(self) -> str:
        """The trace as an indented tree: children under their parent, by start time.

        Spans whose parent is missing are drawn as extra roots, marked.
        """
        if not self.spans:
            return "(no spans)"
        lines: list[str] = []
        for trace_id in self.trace_ids:
            spans = [span for span in self.spans if span.trace_id == trace_id]
            services = sorted({span.service for span in spans})
            lines.append(f"trace {trace_id}: {len(spans)} spans, services {', '.join(services)}")
            tops = [span for span in spans if self.parent(span) is None]
            drawn: set[str] = set()
            for index, top in enumerate(tops):
                self._render(top, "", index == len(tops) - 1, lines, drawn)
        return "\n".join(lines)

    def _render(
        self, span: Span, indent: str, last: bool, lines: list[str], drawn: set[str]
    ) -> None:
        if span.span_id in drawn:  # a cycle of parent links: draw each span once
            return
        drawn.add(span.span_id)
        note = ""
        if span.parent_span_id is not None and span.parent_span_id not in self._by_id:
            note = f"  (parent {span.parent_span_id} not in trace)"
        lines.append(f"{indent}{'└── ' if last else '├── '}{span.describe()}{note}")
        children = self.children(span)
        for index, child in enumerate(children):
            self._render(
                child,
                indent + ("    " if last else "│   "),
                index == len(children) - 1,
                lines,
                drawn,
            )


def _start_order(span: Span) -> tuple[int, str, str]:
    return (span.start_ns, span.name, span.span_id)


def _describe_query(name: str | None, service: str | None, kind: SpanKind | None) -> str:
    parts = [f"named {name!r}" if name is not None else "of any name"]
    if service is not None:
        parts.append(f"in service {service!r}")
    if kind is not None:
        parts.append(f"of kind {kind}")
    return " ".join(parts)


def _code_name(code: str | grpc.StatusCode | int) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return GRPC_CODE_NAMES.get(code, str(code))
    if code.upper() not in grpc.StatusCode.__members__:
        raise ValueError(f"{code!r} is not a gRPC status code name")
    return code.upper()
