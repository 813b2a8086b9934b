"""Load and faults: concurrent creates through the gateway with write accounting.

Starts the backend as ``make dev`` does (scripts/dev.py's ``running_backend``, free
ports, a harness fault link between dummy and user), logs in with the development
login, and runs ``--clients`` clients creating entities (``POST /entities`` with a
fresh request_id each) for ``--duration`` seconds per fault. A fault is injected a
third of the way in and healed ``--fault-seconds`` later:

    service-kill      dummy SIGKILLed, started again on its port
    postgres-restart  Postgres stopped (fast shutdown) and started
    postgres-crash    Postgres SIGKILLed and started (durable commits for this run:
                      make dev's Postgres is not crash-safe otherwise)
    link-cut          the dummy -> user link cut, then restored
    all               each of them in turn, one run of --duration each

Prints a progress line every 5 s, then per run: req/s, p50/p99 latency of the answers,
the answers by kind, the time from healing to the first acknowledged create, and the
accounting of fixtures/writes.py (lost: acknowledged but not stored; phantoms: stored
though answered with a definite failure; unknown outcomes, settled by a retry with
their request_id). Everything it starts is stopped on exit, Ctrl-C or SIGTERM.

    uv run python scripts/load_faults.py --fault all
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # fixtures/, the accounting the tests use too

from bench_gateway import stop_on_signals  # noqa: E402
from dev import Backend, running_backend  # noqa: E402
from progress import Progress  # noqa: E402

from fixtures.writes import (  # noqa: E402
    Accounting,
    WriteLedger,
    account,
    settle_unknown,
    stored_entities,
    write_until,
)
from harness import Link, PostgresControl  # noqa: E402

FAULTS = ("none", "service-kill", "postgres-restart", "postgres-crash", "link-cut")
LOG_DIR = ROOT / ".dev" / "load-faults"
PROGRESS_SECONDS = 5.0
CSRF = {"X-Requested-With": "load-faults"}


@dataclass(frozen=True)
class RunResult:
    fault: str
    seconds: float
    answers: int
    p50_ms: float | None
    p99_ms: float | None
    counts: dict[str, int]
    recovered_s: float | None  # healing -> first acknowledged create sent after it
    accounting: Accounting
    unsettled: int  # unknown outcomes a retry with their request_id did not settle

    @property
    def requests_per_second(self) -> float:
        return self.answers / self.seconds if self.seconds > 0 else 0.0


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` quantile (nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    # nearest rank: the smallest value with at least ``fraction`` of them at or below it
    # (less a hair: 0.99 * 100 is 99.00000000000001 in floating point)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def summarize(
    fault: str,
    ledger: WriteLedger,
    seconds: float,
    healed_at: float | None,
    accounting: Accounting,
    unsettled: int,
) -> RunResult:
    latencies = [(a.answered_at - a.sent_at) * 1000 for a in ledger.answers]
    recovered_at = ledger.first_success_sent_after(healed_at) if healed_at else None
    return RunResult(
        fault=fault,
        seconds=seconds,
        answers=len(ledger.answers),
        p50_ms=statistics.median(latencies) if latencies else None,
        p99_ms=percentile(latencies, 0.99),
        counts=dict(ledger.counts().most_common()),
        recovered_s=None if recovered_at is None or healed_at is None else recovered_at - healed_at,
        accounting=accounting,
        unsettled=unsettled,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_table(results: Sequence[RunResult]) -> str:
    """The results as a Markdown table (the README's)."""
    lines = [
        "| fault | req/s | p50 ms | p99 ms | answers | recovered after healing | "
        "lost | phantoms | unknown (stored) | unsettled |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        answers = ", ".join(f"{what} {n:,}" for what, n in r.counts.items())
        recovered = "-" if r.recovered_s is None else f"{r.recovered_s:.2f} s"
        a = r.accounting
        lines.append(
            f"| {r.fault} | {r.requests_per_second:,.0f} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} "
            f"| {answers} | {recovered} | {len(a.lost)} | {len(a.phantoms)} "
            f"| {a.unknown} ({a.unknown_stored}) | {r.unsettled} |"
        )
    return "\n".join(lines)


def faults_of(choice: str) -> list[str]:
    return list(FAULTS[1:]) if choice == "all" else [choice]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=_positive_float, default=30.0, help="seconds per run")
    parser.add_argument("--clients", type=_positive_int, default=48)
    parser.add_argument("--fault", choices=[*FAULTS, "all"], default="none")
    parser.add_argument(
        "--fault-seconds", type=_positive_float, default=3.0, help="how long a fault lasts"
    )
    args = parser.parse_args(argv)
    if args.fault != "none" and args.duration < args.fault_seconds * 2:
        parser.error(
            f"--duration {args.duration:g} is too short for a {args.fault_seconds:g} s fault: "
            f"give at least {args.fault_seconds * 2:g}"
        )
    return args


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: give a whole number of at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: give a number of seconds above 0")
    return value


class Faults:
    """Injects and heals each fault on the running backend."""

    def __init__(self, backend: Backend, link: Link) -> None:
        self._backend = backend
        self._link = link
        self._postgres = PostgresControl(backend.postgres)
        self._dummy_port = ""

    async def inject(self, fault: str) -> None:
        if fault == "service-kill":
            dummy = self._backend.processes["dummy"]
            self._dummy_port = str(dummy.port)
            await asyncio.to_thread(dummy.kill)
        elif fault == "postgres-restart":
            await self._postgres.astop()
        elif fault == "postgres-crash":
            await self._postgres.akill()
        elif fault == "link-cut":
            self._link.cut()

    async def heal(self, fault: str) -> None:
        if fault == "service-kill":
            dummy = self._backend.processes["dummy"]
            dummy.env["DUMMY_GRPC_PORT"] = self._dummy_port  # the gateway knows it there
            dummy.launch()  # from this thread: the process dies with the thread that launched it
            await asyncio.to_thread(dummy.wait_serving)
        elif fault in ("postgres-restart", "postgres-crash"):
            await self._postgres.astart()
        elif fault == "link-cut":
            self._link.restore()

    def durable(self, on: bool) -> None:
        if on:
            self._postgres.durable()


async def one_run(url: str, fault: str, args: argparse.Namespace, faults: Faults) -> RunResult:
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, headers=CSRF, timeout=15, limits=limits) as client:
        login = await client.post("/auth/dev/login", json={"email": f"{fault}@example.com"})
        login.raise_for_status()
        ledger, stop = WriteLedger(), asyncio.Event()
        started = time.monotonic()
        writers = [
            asyncio.create_task(write_until(client, ledger, stop)) for _ in range(args.clients)
        ]
        healed_at: float | None = None
        try:
            healed_at = await drive(fault, args, faults, ledger, started)
        finally:
            stop.set()
            await asyncio.gather(*writers)
        seconds = time.monotonic() - started
        before = account(ledger, await stored_entities(client))
        unsettled = await settle_unknown(client, ledger)
        writes = WriteLedger([a for a in ledger.answers if a.sent_at <= started + seconds])
        return summarize(fault, writes, seconds, healed_at, before, len(unsettled))


async def drive(
    fault: str, args: argparse.Namespace, faults: Faults, ledger: WriteLedger, started: float
) -> float | None:
    """Let the writers run, inject and heal the fault on schedule, print progress; when
    the fault was healed."""
    inject_at = started + args.duration / 3 if fault != "none" else None
    heal_at = inject_at + args.fault_seconds if inject_at is not None else None
    healed_at = None
    next_progress = started + PROGRESS_SECONDS
    while (now := time.monotonic()) < started + args.duration:
        if inject_at is not None and now >= inject_at:
            print(f"  {now - started:5.1f} s  {fault}: injected", flush=True)
            await faults.inject(fault)
            inject_at = None
        elif heal_at is not None and inject_at is None and now >= heal_at:
            await faults.heal(fault)
            healed_at = time.monotonic()
            print(f"  {healed_at - started:5.1f} s  {fault}: healed", flush=True)
            heal_at = None
        if now >= next_progress:
            counts = ledger.counts()
            acked = counts.get("201", 0)
            print(
                f"  {now - started:5.1f} s  {len(ledger.answers):,} answers "
                f"({len(ledger.answers) / (now - started):,.0f}/s), {acked:,} acknowledged, "
                f"others {dict((k, v) for k, v in counts.items() if k != '201')}",
                flush=True,
            )
            next_progress += PROGRESS_SECONDS
        await asyncio.sleep(0.05)
    return healed_at


@contextlib.contextmanager
def dummy_to_user_link() -> Iterator[tuple[Link, dict[str, str]]]:
    """A link whose upstream is user's address, known once user has started."""
    upstream: dict[str, str] = {}
    with Link(lambda: upstream["user"], name="dummy -> user") as link:
        yield link, upstream


def through_link(
    link: Link, upstream: dict[str, str], caller: str, callee: str, address: str
) -> str:
    """dummy reaches user through ``link`` (its upstream is user's address)."""
    if (caller, callee) != ("dummy", "user"):
        return address
    upstream[callee] = address
    return link.address


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    results: list[RunResult] = []
    try:
        with (
            dummy_to_user_link() as (link, upstream),
            running_backend(
                "0",
                LOG_DIR,
                progress=Progress(),
                call_address=functools.partial(through_link, link, upstream),
            ) as backend,
        ):
            faults = Faults(backend, link)
            for fault in faults_of(args.fault):
                print(f"{fault}: {args.clients} clients for {args.duration:g} s", flush=True)
                faults.durable(fault == "postgres-crash")
                result = asyncio.run(one_run(backend.gateway_url, fault, args, faults))
                results.append(result)
                print(f"  {result.accounting.summary()}; unsettled {result.unsettled}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130
    print()
    print(render_table(results))
    failed = [r.fault for r in results if not r.accounting.consistent or r.unsettled]
    if failed:
        print(f"\nwrite accounting failed for: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
