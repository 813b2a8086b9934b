"""What a long command is doing, while it does it: the one progress printer of the image
builder (harness.images) and of the kit's scripts/ (scripts/progress.py re-exports it).

    progress = Progress()                       # on stdout
    progress.note("building 2 images: ...")     # a line that stays
    with progress.step("kit/dummy: docker build") as step:
        step.detail("Step 3/12 : RUN pip install ...")
    progress.result("built  kit/dummy:0123 ...")

Three ways to print, chosen from the stream (``mode=None``):

- ``live``, on a terminal: the step in progress is one status line rewritten in place
  (its latest detail and the seconds so far, redrawn every second); lines that stay
  are printed above it.
- ``plain``, anywhere else (a pipe, a CI log): a line when a step starts, its latest
  detail at most every ``detail_seconds``, and a ``still ...`` line after
  ``heartbeat_seconds`` without output, so no minute is ever silent.
- ``events``, for a program that reads the output (the test session's image builds,
  conftest.py): the plain lines, each a JSON object ``{"kind": ..., "text": ...}``,
  kind one of note, result, failure, step, detail, still.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = ["Finished", "Mode", "Progress", "Step", "default_mode", "duration", "run_streamed"]


class Mode(enum.StrEnum):
    LIVE = "live"
    PLAIN = "plain"
    EVENTS = "events"


def default_mode(stream: TextIO) -> Mode:
    """live on a terminal (unless TERM=dumb), plain elsewhere."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty() and os.environ.get("TERM") != "dumb":
        return Mode.LIVE
    return Mode.PLAIN


def duration(seconds: float) -> str:
    """``7 s``, ``2 min 05 s``: how long, as a person reads it."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"


class Progress:
    """Prints what is going on; thread-safe. ``ticking=False`` leaves the redraws and
    heartbeats to explicit ``tick()`` calls (the tests drive a fake clock that way).

    Steps of one thread nest: the inner one is shown until it ends. Steps of several
    threads run side by side (images built concurrently): the status line shows each
    thread's innermost step, and each gets its own detail and heartbeat lines."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        mode: Mode | None = None,
        heartbeat_seconds: float = 10.0,
        detail_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        ticking: bool = True,
        width: int | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.mode = mode if mode is not None else default_mode(self.stream)
        self.heartbeat_seconds = heartbeat_seconds
        self.detail_seconds = detail_seconds
        self.clock = clock
        self.width = width
        self._lock = threading.RLock()
        self._steps: list[Step] = []  # in progress, in the order they started
        self._last_output = clock()
        self._status_shown = False
        self._ticker: threading.Thread | None = None
        self._ticking = ticking
        self._stop_ticking = threading.Event()

    # ------------------------------------------------------------ lines that stay

    def note(self, text: str) -> None:
        """What is about to happen, and why."""
        self._line("note", text)

    def result(self, text: str) -> None:
        """One outcome (an image built or reused...): what ``-q`` still shows."""
        self._line("result", text)

    def failure(self, text: str) -> None:
        """What failed, with the tail of its output (several lines)."""
        self._line("failure", text)

    # ------------------------------------------------------------ steps

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[Step]:
        """A step that may take a while: shown as it starts and while it runs."""
        step = Step(self, text, self.clock(), threading.get_ident())
        with self._lock:
            self._steps.append(step)
            if self.mode is Mode.LIVE:
                self._draw_status()
            else:
                self._line("step", text)
        self._start_ticking()
        try:
            yield step
        finally:
            with self._lock:
                self._steps.remove(step)
                if self.mode is Mode.LIVE:
                    self._clear_status()
                    if self._steps:
                        self._draw_status()

    def tick(self) -> None:
        """Redraw the status line (live), or say the step is still running when nothing
        was printed for ``heartbeat_seconds`` (plain, events)."""
        with self._lock:
            shown = self._shown_steps()
            if not shown:
                return
            now = self.clock()
            if self.mode is Mode.LIVE:
                self._draw_status()
            elif now - self._last_output >= self.heartbeat_seconds:
                for step in shown:
                    latest = f": {step.latest}" if step.latest else ""
                    started = duration(now - step.started)
                    self._line("still", f"still {step.text}{latest} ({started})")

    def close(self) -> None:
        self._stop_ticking.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        with self._lock:
            self._clear_status()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ inside

    def _detail(self, step: Step, text: str) -> None:
        with self._lock:
            step.latest = text
            if step not in self._shown_steps():
                return
            if self.mode is Mode.LIVE:
                self._draw_status()
                return
            now = self.clock()
            # fast details are folded: the latest one is what the next line shows
            if now - step.detail_printed >= self.detail_seconds:
                step.detail_printed = now
                self._line("detail", f"{step.text}: {text}")

    def _line(self, kind: str, text: str) -> None:
        with self._lock:
            if self.mode is Mode.EVENTS:
                self.stream.write(json.dumps({"kind": kind, "text": text}) + "\n")
            elif self.mode is Mode.LIVE:
                self._clear_status()
                self.stream.write(text + "\n")
                if self._steps:
                    self._draw_status()
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
            self._last_output = self.clock()

    def _shown_steps(self) -> list[Step]:
        """Each thread's innermost step, in the order the threads' steps started."""
        innermost: dict[int, Step] = {}
        for step in self._steps:
            # a later step of the same thread is nested in the earlier: it takes its
            # place (a dict keeps a key where it was first inserted)
            innermost[step.thread] = step
        return list(innermost.values())

    def _status_text(self) -> str:
        now = self.clock()
        text = " | ".join(
            f"{step.text}{f' - {step.latest}' if step.latest else ''} "
            f"({duration(now - step.started)})"
            for step in self._shown_steps()
        )
        width = self.width or shutil.get_terminal_size().columns
        return text if len(text) < width else text[: max(width - 2, 1)] + "…"

    def _draw_status(self) -> None:
        self.stream.write("\r\x1b[K" + self._status_text())
        self.stream.flush()
        self._status_shown = True

    def _clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._status_shown = False

    def _start_ticking(self) -> None:
        if not self._ticking or self._ticker is not None:
            return
        self._ticker = threading.Thread(target=self._tick_forever, name="progress", daemon=True)
        self._ticker.start()

    def _tick_forever(self) -> None:
        while not self._stop_ticking.wait(1.0):
            self.tick()


@dataclass
class Step:
    """A step in progress; ``detail`` says what it is doing now."""

    progress: Progress
    text: str
    started: float
    thread: int  # the thread it runs in: its steps nest, other threads' run beside it
    latest: str = ""
    detail_printed: float = float("-inf")

    def detail(self, text: str) -> None:
        text = text.strip()
        if text:
            self.progress._detail(self, text)

    @property
    def seconds(self) -> float:
        return self.progress.clock() - self.started


@dataclass(frozen=True)
class Finished:
    """A command run by ``run_streamed``: its exit status and the tail of its output."""

    returncode: int
    tail: str


def run_streamed(
    step: Step,
    command: list[str],
    *,
    detail: Callable[[str], str | None] = lambda line: line,
    tail_lines: int = 30,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Finished:
    """Run ``command`` (stdout and stderr together), each output line ``detail``-ed into
    the step (``None`` skips it); keeps the last ``tail_lines`` for a failure's message."""
    tail: deque[str] = deque(maxlen=tail_lines)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        cwd=cwd,
        env=None if env is None else dict(env),
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            shown = detail(line)
            if shown:
                step.detail(shown)
        returncode = process.wait()
    return Finished(returncode, "\n".join(tail))
