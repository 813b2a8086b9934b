"""fixtures/writes.py: how answers are classified and the ledger checked against storage."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fixtures.writes import (
    Accounting,
    Answer,
    Outcome,
    WriteLedger,
    account,
    classify_answer,
    classify_transport_error,
    name_of,
)


def error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": "...", "trace_id": "t"}}


ANSWERS: dict[str, tuple[int, Any, Outcome]] = {
    "created": (201, {"id": "e1"}, Outcome.ACKNOWLEDGED),
    "unavailable: nothing changed": (503, error("unavailable"), Outcome.FAILED),
    "deadline: nothing changed": (504, error("deadline_exceeded"), Outcome.FAILED),
    "503 outcome unknown": (503, error("outcome_unknown"), Outcome.UNKNOWN),
    "504 outcome unknown": (504, error("outcome_unknown"), Outcome.UNKNOWN),
    "502 outcome unknown": (502, error("outcome_unknown"), Outcome.UNKNOWN),
    "bad gateway: an INTERNAL somewhere": (502, error("bad_gateway"), Outcome.UNEXPECTED),
    "a 500": (500, error("internal"), Outcome.UNEXPECTED),
    "a 4xx": (422, error("validation_failed"), Outcome.UNEXPECTED),
    "a body that is not the error shape": (503, "Service Unavailable", Outcome.UNEXPECTED),
}


@pytest.mark.parametrize(("status", "body", "outcome"), ANSWERS.values(), ids=ANSWERS)
def test_answers_are_classified(status: int, body: Any, outcome: Outcome) -> None:
    assert classify_answer(status, body) is outcome


TRANSPORT: dict[str, tuple[httpx.HTTPError, Outcome]] = {
    "refused: never sent": (httpx.ConnectError("refused"), Outcome.FAILED),
    "connect timeout: never sent": (httpx.ConnectTimeout("slow"), Outcome.FAILED),
    "no connection from the pool: never sent": (httpx.PoolTimeout("busy"), Outcome.FAILED),
    "closed before the answer": (
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        Outcome.UNKNOWN,
    ),
    "reset while reading": (httpx.ReadError("reset"), Outcome.UNKNOWN),
    "no answer in time": (httpx.ReadTimeout("slow"), Outcome.UNKNOWN),
    "reset while sending": (httpx.WriteError("reset"), Outcome.UNKNOWN),
}


@pytest.mark.parametrize(("failure", "outcome"), TRANSPORT.values(), ids=TRANSPORT)
def test_answers_that_never_came_are_classified(failure: httpx.HTTPError, outcome: Outcome) -> None:
    assert classify_transport_error(failure) is outcome


def answer(request_id: str, outcome: Outcome, entity_id: str | None = None) -> Answer:
    return Answer(request_id, outcome, outcome.value, 0.0, 0.0, entity_id)


LEDGER = [
    answer("acked", Outcome.ACKNOWLEDGED, "e-acked"),
    answer("failed", Outcome.FAILED),
    answer("unknown-stored", Outcome.UNKNOWN),
    answer("unknown-absent", Outcome.UNKNOWN),
]
CONSISTENT = [("e-acked", name_of("acked")), ("e-u", name_of("unknown-stored"))]

# stored entities (id, name) -> lost, phantoms, duplicates
ACCOUNTS: dict[
    str, tuple[list[tuple[str, str]], tuple[str, ...], tuple[str, ...], tuple[str, ...]]
] = {
    "consistent: unknown outcomes go either way": (CONSISTENT, (), (), ()),
    "an acknowledged write missing is lost": (CONSISTENT[1:], ("acked",), (), ()),
    "stored under another id than acknowledged is lost": (
        [("e-other", name_of("acked")), CONSISTENT[1]],
        ("acked",),
        (),
        (),
    ),
    "a failed write stored is a phantom": (
        [*CONSISTENT, ("e-f", name_of("failed"))],
        (),
        ("failed",),
        (),
    ),
    "a write nobody sent is a phantom": (
        [*CONSISTENT, ("e-x", name_of("never-sent"))],
        (),
        ("never-sent",),
        (),
    ),
    "an entity of another name is a phantom": (
        [*CONSISTENT, ("e-y", "someone else's")],
        (),
        ("someone else's",),
        (),
    ),
    "a request stored twice is a duplicate": (
        [*CONSISTENT, ("e-u2", name_of("unknown-stored"))],
        (),
        (),
        ("unknown-stored",),
    ),
}


@pytest.mark.parametrize(
    ("stored", "lost", "phantoms", "duplicates"), ACCOUNTS.values(), ids=ACCOUNTS
)
def test_the_ledger_against_what_is_stored(
    stored: list[tuple[str, str]],
    lost: tuple[str, ...],
    phantoms: tuple[str, ...],
    duplicates: tuple[str, ...],
) -> None:
    result = account(WriteLedger(list(LEDGER)), stored)
    assert (result.lost, result.phantoms, result.duplicates) == (lost, phantoms, duplicates)
    assert result.consistent is not bool(lost or phantoms or duplicates)
    assert (result.acknowledged, result.failed, result.unknown) == (1, 1, 2)


def test_a_settled_retry_counts_once() -> None:
    ledger = WriteLedger([answer("u", Outcome.UNKNOWN), answer("u", Outcome.ACKNOWLEDGED, "e-u")])
    assert account(ledger, [("e-u", name_of("u"))]) == Accounting(
        acknowledged=1,
        failed=0,
        unknown=1,
        unknown_stored=1,
        unexpected=0,
        lost=(),
        phantoms=(),
        duplicates=(),
    )


def test_the_summary_names_every_count() -> None:
    result = account(WriteLedger(list(LEDGER)), CONSISTENT)
    assert result.summary() == (
        "1 acknowledged, 1 failed, 2 unknown (1 of them stored), 0 unexpected; "
        "lost 0, phantoms 0, duplicates 0"
    )
