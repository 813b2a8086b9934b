"""scripts/progress.py, the progress printer of the long scripts: what each mode prints,
driven by a fake clock (no thread, no sleep)."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from progress import Mode, Progress, default_mode, duration, run_streamed  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def printer(mode: Mode, clock: Clock, stream: io.StringIO | None = None) -> Progress:
    return Progress(
        stream if stream is not None else io.StringIO(),
        mode=mode,
        heartbeat_seconds=15,
        detail_seconds=5,
        clock=clock,
        ticking=False,
        width=60,
    )


def output(progress: Progress) -> str:
    assert isinstance(progress.stream, io.StringIO)
    return progress.stream.getvalue()


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (59.9, "59 s"), (60, "1 min 00 s"), (425, "7 min 05 s")],
)
def test_durations_read_as_a_person_says_them(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("stream", "term", "mode"),
    [
        (Terminal(), "xterm", Mode.LIVE),
        (Terminal(), "dumb", Mode.PLAIN),
        (io.StringIO(), "xterm", Mode.PLAIN),
    ],
    ids=["terminal", "dumb-terminal", "pipe-or-ci-log"],
)
def test_live_only_on_a_terminal(
    stream: io.StringIO, term: str, mode: Mode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", term)
    assert default_mode(stream) is mode
    assert Progress(stream, ticking=False).mode is mode


def test_plain_lines_show_each_step_its_details_now_and_then_and_a_heartbeat() -> None:
    clock = Clock()
    progress = printer(Mode.PLAIN, clock)
    progress.note("building 1: kit/dummy (no image)")
    with progress.step("kit/dummy: docker build") as step:
        step.detail("Step 1/9 : FROM x")  # first detail: printed
        clock.now += 1
        step.detail("Step 2/9 : COPY a b")  # within 5 s of the last: folded
        clock.now += 5
        step.detail("Step 3/9 : RUN pip install")  # 5 s later: printed
        clock.now += 14
        progress.tick()  # 14 s without output: nothing yet
        clock.now += 1
        progress.tick()  # 15 s: still running, with the latest detail
        progress.tick()  # just printed: nothing
    progress.result("built  kit/dummy:0123   21.0s   212.7 MB")
    assert output(progress).splitlines() == [
        "building 1: kit/dummy (no image)",
        "kit/dummy: docker build",
        "kit/dummy: docker build: Step 1/9 : FROM x",
        "kit/dummy: docker build: Step 3/9 : RUN pip install",
        "still kit/dummy: docker build: Step 3/9 : RUN pip install (21 s)",
        "built  kit/dummy:0123   21.0s   212.7 MB",
    ]


def test_no_heartbeat_outside_a_step() -> None:
    clock = Clock()
    progress = printer(Mode.PLAIN, clock)
    clock.now += 100
    progress.tick()
    assert output(progress) == ""


def test_live_mode_rewrites_one_status_line_and_prints_lasting_lines_above_it() -> None:
    clock = Clock()
    progress = printer(Mode.LIVE, clock)
    with progress.step("kit/debian: debootstrap") as step:
        assert output(progress) == "\r\x1b[Kkit/debian: debootstrap (0 s)"
        clock.now += 3
        step.detail("Retrieving libc6")
        assert output(progress).endswith("\r\x1b[Kkit/debian: debootstrap - Retrieving libc6 (3 s)")
        clock.now += 1
        progress.tick()
        assert output(progress).endswith("- Retrieving libc6 (4 s)")
        progress.note("a lasting line")
        # the status is erased, the line printed, the status drawn again below it
        assert output(progress).endswith(
            "\r\x1b[Ka lasting line\n\r\x1b[Kkit/debian: debootstrap - Retrieving libc6 (4 s)"
        )
    assert output(progress).endswith("(4 s)\r\x1b[K")  # no status left behind
    progress.result("built  kit/debian:bookworm")
    assert output(progress).endswith("\r\x1b[Kbuilt  kit/debian:bookworm\n")


def test_a_live_status_line_is_cut_to_the_terminal_width() -> None:
    progress = printer(Mode.LIVE, Clock())
    with progress.step("kit/dummy: docker build") as step:
        step.detail("Step 5/20 : RUN python3 -m venv /venv && /venv/bin/pip install -r x")
        status = output(progress).rsplit("\r\x1b[K", 1)[1]
    assert len(status) == 59
    assert status.endswith("…")


def test_events_are_json_lines_with_their_kind() -> None:
    clock = Clock()
    progress = printer(Mode.EVENTS, clock)
    progress.note("building 1")
    with progress.step("kit/dummy: docker build") as step:
        step.detail("Step 1/9 : FROM x")
        clock.now += 15
        progress.tick()
    progress.result("built  kit/dummy:0123")
    progress.failure("error: docker build failed\nlast line")
    events = [json.loads(line) for line in output(progress).splitlines()]
    assert events == [
        {"kind": "note", "text": "building 1"},
        {"kind": "step", "text": "kit/dummy: docker build"},
        {"kind": "detail", "text": "kit/dummy: docker build: Step 1/9 : FROM x"},
        {"kind": "still", "text": "still kit/dummy: docker build: Step 1/9 : FROM x (15 s)"},
        {"kind": "result", "text": "built  kit/dummy:0123"},
        {"kind": "failure", "text": "error: docker build failed\nlast line"},
    ]


def test_a_nested_step_gives_the_status_back_to_the_outer_one() -> None:
    progress = printer(Mode.LIVE, Clock())
    with progress.step("outer"):
        with progress.step("inner"):
            assert output(progress).endswith("inner (0 s)")
        assert output(progress).endswith("\r\x1b[Kouter (0 s)")


def in_another_thread(progress: Progress, text: str, inside: threading.Event) -> threading.Thread:
    """A step of ``text`` in a thread of its own, held open until ``inside`` is set."""
    started = threading.Event()

    def run() -> None:
        with progress.step(text) as step:
            step.detail(f"{text} working")
            started.set()
            inside.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)
    return thread


def test_steps_of_two_threads_are_shown_side_by_side_each_with_its_details() -> None:
    clock = Clock()
    progress = printer(Mode.LIVE, clock)
    progress.width = 200
    done = threading.Event()
    with progress.step("kit/auth: docker build") as step:
        step.detail("Step 3/19")
        other = in_another_thread(progress, "kit/user: docker build", done)
        clock.now += 2
        progress.tick()
        assert output(progress).endswith(
            "\r\x1b[Kkit/auth: docker build - Step 3/19 (2 s) | "
            "kit/user: docker build - kit/user: docker build working (2 s)"
        )
        done.set()
        other.join(10)
        assert output(progress).endswith("\r\x1b[Kkit/auth: docker build - Step 3/19 (2 s)")


def test_in_plain_mode_each_step_of_several_threads_gets_its_details_and_heartbeats() -> None:
    clock = Clock()
    progress = printer(Mode.PLAIN, clock)
    done = threading.Event()
    with progress.step("auth"):
        other = in_another_thread(progress, "user", done)
        clock.now += 15
        progress.tick()
        done.set()
        other.join(10)
    assert output(progress).splitlines() == [
        "auth",
        "user",
        "user: user working",
        "still auth (15 s)",
        "still user: user working (15 s)",
    ]


def test_a_streamed_command_feeds_the_step_and_keeps_its_tail() -> None:
    clock = Clock()
    progress = printer(Mode.PLAIN, clock)
    script = "import sys\nfor i in range(5): print(f'line {i}')\nprint('oops', file=sys.stderr)\n"
    with progress.step("probe") as step:
        finished = run_streamed(
            step,
            [sys.executable, "-c", script + "sys.exit(3)"],
            detail=lambda line: line.upper() if line.startswith("line") else None,
            tail_lines=3,
        )
    assert finished.returncode == 3
    assert finished.tail == "line 3\nline 4\noops"  # stderr too, in order
    # the first detail is printed at once, the others fold into it (same fake instant)
    assert output(progress).splitlines() == ["probe", "probe: LINE 0"]
    assert step.latest == "LINE 4"


def test_the_ticker_thread_redraws_on_its_own() -> None:
    """The real clock and thread: a heartbeat comes without any call."""
    stream = io.StringIO()
    progress = Progress(stream, mode=Mode.PLAIN, heartbeat_seconds=0.5)
    with progress, progress.step("waiting"):
        deadline = time.monotonic() + 10
        while "still waiting" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "still waiting (" in stream.getvalue()
