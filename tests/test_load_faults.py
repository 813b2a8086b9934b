"""scripts/load_faults.py: its pure parts (arguments, percentiles, the summary and table).
The accounting itself is fixtures/writes.py's (tests/test_write_accounting.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from load_faults import (  # noqa: E402
    FAULTS,
    faults_of,
    parse_args,
    percentile,
    render_table,
    summarize,
)

from fixtures.writes import Answer, Outcome, WriteLedger, account, name_of  # noqa: E402

PERCENTILES = {
    "empty": ([], 0.99, None),
    "one value": ([5.0], 0.99, 5.0),
    "median of four (nearest rank)": ([4.0, 1.0, 3.0, 2.0], 0.5, 2.0),
    "p99 of a hundred": ([float(n) for n in range(1, 101)], 0.99, 99.0),
    "p99 of ten is the largest": ([float(n) for n in range(10)], 0.99, 9.0),
}


@pytest.mark.parametrize(("values", "fraction", "expected"), PERCENTILES.values(), ids=PERCENTILES)
def test_percentile(values: list[float], fraction: float, expected: float | None) -> None:
    assert percentile(values, fraction) == expected


def test_all_is_every_fault_in_turn() -> None:
    assert faults_of("all") == ["service-kill", "postgres-restart", "postgres-crash", "link-cut"]
    assert faults_of("link-cut") == ["link-cut"]
    assert FAULTS[0] == "none"


def test_the_defaults_are_48_clients_for_30_seconds_without_a_fault() -> None:
    args = parse_args([])
    assert (args.clients, args.duration, args.fault, args.fault_seconds) == (48, 30.0, "none", 3.0)


BAD_ARGUMENTS = {
    "no clients": ["--clients", "0"],
    "a negative duration": ["--duration", "-1"],
    "an unknown fault": ["--fault", "meteor"],
    "a run shorter than twice the fault": ["--fault", "link-cut", "--duration", "5"],
}


@pytest.mark.parametrize("argv", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS)
def test_bad_arguments_exit_2_naming_the_problem(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def ledger() -> WriteLedger:
    # sent at 0..3 s, each answered 10 ms (201) or 100 ms later
    return WriteLedger(
        [
            Answer("a", Outcome.ACKNOWLEDGED, "201", 0.0, 0.01, "e-a"),
            Answer("b", Outcome.FAILED, "503 unavailable", 1.0, 1.1),
            Answer("c", Outcome.UNKNOWN, "503 outcome_unknown", 2.0, 2.1),
            Answer("d", Outcome.ACKNOWLEDGED, "201", 3.0, 3.01, "e-d"),
        ]
    )


def test_a_run_is_summarized_and_rendered() -> None:
    writes = ledger()
    accounting = account(writes, [("e-a", name_of("a")), ("e-d", name_of("d"))])
    result = summarize("postgres-crash", writes, 2.0, 2.5, accounting, unsettled=0)
    assert result.requests_per_second == 2.0
    assert result.recovered_s == pytest.approx(0.51)  # the create sent at 3 s, answered 3.01 s
    assert result.p50_ms == pytest.approx(55.0)
    assert result.counts == {"201": 2, "503 unavailable": 1, "503 outcome_unknown": 1}
    table = render_table([result])
    assert table.splitlines()[2] == (
        "| postgres-crash | 2 | 55.0 | 100.0 | 201 2, 503 unavailable 1, 503 outcome_unknown 1 "
        "| 0.51 s | 0 | 0 | 1 (0) | 0 |"
    )


def test_a_run_without_a_fault_has_no_recovery() -> None:
    writes = ledger()
    result = summarize("none", writes, 4.0, None, account(writes, []), unsettled=0)
    assert result.recovered_s is None
    assert "| - |" in render_table([result])
    assert len(result.accounting.lost) == 2, "nothing stored: both acknowledged creates lost"
