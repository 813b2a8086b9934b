"""A service run as a local process: started, awaited until it serves, stopped or killed.

Plain code, usable without pytest (scripts/dev.py uses it too). The service is
started with ``python -m <module>`` and gRPC port 0; it announces the port it
bound in its JSON "serving" log line, which this class reads from the child's
stderr (no port is picked in advance, so two runs never race for one). Every
line is also kept in a log file and in memory, so a failure can show the tail.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError, ServiceStartError
from harness.grpc_runtime import with_grpc_runtime

__all__ = ["LOG_TAIL_LINES", "ServiceProcess"]

LOG_TAIL_LINES = 200


@dataclass
class ServiceProcess:
    """One service process. ``start()`` returns once the service serves on ``port``."""

    name: str
    module: str
    env: dict[str, str]
    log_path: Path
    start_timeout: float = 30.0
    port: int | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES), repr=False)
    _serving: threading.Event = field(default_factory=threading.Event, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        if self.port is None:
            raise HarnessError(f"{self.name} is not serving")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Launch, and return once it serves (or raise ServiceStartError)."""
        self.launch()
        self.wait_serving()

    def launch(self) -> None:
        """Start the process without waiting: several services can start side by side.

        Call it from a thread that outlives the service (the process dies with the
        thread that launched it), e.g. the main thread."""
        self._serving.clear()
        self.port = None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=with_grpc_runtime({**os.environ, **self.env}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the child
            # ... and yet it must not outlive us: a killed test run leaves no service behind.
            preexec_fn=_die_with_parent(),
        )
        self._reader = threading.Thread(
            target=self._read_output, name=f"{self.name}-log", daemon=True
        )
        self._reader.start()

    def wait_serving(self) -> None:
        """Wait until the launched process serves; raise ServiceStartError if it exits or
        stays silent for ``start_timeout`` seconds."""
        assert self._process is not None, "launch() first"
        # The reader sets the event on the "serving" line, or when the output ends
        # (the process died): either way the wait ends without polling.
        output_ended_or_serving = self._serving.wait(self.start_timeout)
        if self.port is None:
            code = None
            if output_ended_or_serving:  # the output ended: the process is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self._process.wait(timeout=5)
            self.kill()
            what = (
                f"exited with code {code}"
                if code is not None
                else f"did not serve within {self.start_timeout}s"
            )
            raise ServiceStartError(
                f"{self.name} (python -m {self.module}) {what}.\n"
                f"Last log lines ({self.log_path}):\n{self.log_tail(30)}\n"
                "Remedy: read the log above; check the service's *_DATABASE_URL and that "
                "the generated code exists (`make setup`)."
            )

    def _read_output(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        with self._process.stdout as output, self.log_path.open("ab") as log:
            for raw in output:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip("\n")
                self._tail.append(line)
                if self.port is None and '"serving"' in line:
                    self.port = _serving_port(line)
                    self._serving.set()
        self._serving.set()  # output ended: the process is gone

    def log_tail(self, lines: int = 50) -> str:
        """The last ``lines`` lines it wrote (across restarts, as a container's log): from
        memory up to LOG_TAIL_LINES, from the log file beyond."""
        if lines <= LOG_TAIL_LINES:
            return "\n".join(list(self._tail)[-lines:])
        text = self.log_path.read_bytes().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL if still alive after ``timeout``."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._finish()

    def kill(self) -> int | None:
        """SIGKILL: the crash a fault test wants."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        return self._finish()

    def _finish(self) -> int | None:
        assert self._process is not None
        code = self._process.returncode
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.port = None
        return code

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before exec: ask to be SIGKILLed when the thread that started
    it dies (Linux PR_SET_PDEATHSIG; elsewhere the child outlives a killed run).

    libc is looked up here, in the parent: between fork and exec the child only calls
    the function (no dlopen, whose locks another thread of the parent might hold)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return set_death_signal


def _serving_port(line: str) -> int | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    port = record.get("port") if isinstance(record, dict) else None
    return port if isinstance(port, int) else None
