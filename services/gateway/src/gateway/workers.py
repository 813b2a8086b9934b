"""The gateway on every core: one listening socket, several worker processes.

One Python process runs on one core at a time. With ``GATEWAY_WORKERS`` above 1 the
gateway's first process only supervises: it binds the listening socket (so port 0 works
and every worker accepts from the same queue, with no request lost between them) and
starts that many workers, each a fresh interpreter (``spawn``: nothing of the parent's
threads or gRPC state is inherited) running the whole gateway (its channels, telemetry
and uvicorn) on the shared socket. It logs the one "serving" line launchers wait for once
every worker serves.

- SIGTERM or SIGINT: the supervisor closes its copy of the socket and passes SIGTERM on;
  each worker drains as a single gateway does (``gateway.server``), and the supervisor
  waits for them, for the shutdown grace and a little more, then kills what is left.
- A worker that dies while serving is replaced (logged with its exit code). A worker that
  fails before it serves stops the gateway with exit code 1: a bad setting or a port
  that cannot be used would fail the same way again.
- A worker dies with its supervisor (``PR_SET_PDEATHSIG``), even a SIGKILLed one.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any

from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

# How long every worker may take to serve (imports, channels, uvicorn's start).
STARTUP_TIMEOUT_SECONDS = 60.0
# After the shutdown grace, how long the workers may take to exit before being killed.
EXIT_MARGIN_SECONDS = 5.0
LISTEN_BACKLOG = 2048  # uvicorn's default

# Run in each worker: the settings, the shared socket, and a callback that reports ready.
WorkerMain = Callable[[GatewaySettings, socket.socket, Callable[[], None]], None]


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the process that started it exits, however."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _run_worker(
    worker_main: WorkerMain, settings: GatewaySettings, sock: socket.socket, ready: Connection
) -> None:
    _die_with_parent()

    def serving() -> None:
        # A supervisor gone meanwhile: this worker gets its SIGTERM (_die_with_parent).
        with contextlib.suppress(OSError):
            ready.send(True)
            ready.close()

    worker_main(settings, sock, serving)


@dataclass
class Worker:
    process: SpawnProcess
    ready: Connection  # readable once the worker serves


def _has_said_ready(ready: Connection) -> bool:
    try:
        return ready.poll() and bool(ready.recv())
    except (EOFError, OSError):  # it exited before it served
        return False


class Supervisor:
    """Starts the workers on one socket, replaces one that dies, stops them all on a signal."""

    def __init__(
        self,
        settings: GatewaySettings,
        sock: socket.socket,
        worker_main: WorkerMain,
    ) -> None:
        self.settings = settings
        self.sock = sock
        self.worker_main = worker_main
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, Worker] = {}
        self.stopping = threading.Event()

    def _start(self, index: int) -> None:
        ready, tell_ready = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_run_worker,
            args=(self.worker_main, self.settings, self.sock, tell_ready),
            name=f"gateway-worker-{index}",
        )
        process.start()
        tell_ready.close()  # the worker's end
        self.workers[index] = Worker(process, ready)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping.set()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the process's exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        count = self.settings.worker_count
        for index in range(count):
            self._start(index)
        try:
            if not self._wait_until_serving(count):
                return 1
            port = self.sock.getsockname()[1]
            logger.info(
                "serving",
                extra={
                    "http_address": f"http://{self.settings.host}:{port}",
                    "port": port,
                    "workers": count,
                    "worker_pids": [w.process.pid for w in self.workers.values()],
                },
            )
            while not self.stopping.wait(0.5):
                self._replace_dead_workers()
            return 0
        finally:
            self._stop_all()

    def _wait_until_serving(self, count: int) -> bool:
        serving: set[int] = set()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while len(serving) < count:
            if self.stopping.is_set():
                return False
            for index, worker in self.workers.items():
                if index not in serving and _has_said_ready(worker.ready):
                    serving.add(index)
            failed = [
                (index, worker.process.exitcode)
                for index, worker in self.workers.items()
                if index not in serving and worker.process.exitcode is not None
            ]
            if failed:
                index, code = failed[0]
                logger.error(
                    "a gateway worker exited before it served: stopping the gateway",
                    extra={"worker": index, "exit_code": code},
                )
                return False
            if time.monotonic() > deadline:
                logger.error(
                    "gateway workers did not serve in time: stopping the gateway",
                    extra={"serving": len(serving), "workers": count},
                )
                return False
            time.sleep(0.05)
        return True

    def _replace_dead_workers(self) -> None:
        for index, worker in list(self.workers.items()):
            if worker.process.exitcode is None:
                continue
            logger.error(
                "a gateway worker exited: starting another",
                extra={
                    "worker": index,
                    "pid": worker.process.pid,
                    "exit_code": worker.process.exitcode,
                },
            )
            worker.ready.close()
            self._start(index)

    def _stop_all(self) -> None:
        # Ours closed first: once the workers close theirs, nothing accepts any more.
        self.sock.close()
        processes = [worker.process for worker in self.workers.values()]
        for process in processes:
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds + EXIT_MARGIN_SECONDS
        for process in processes:
            process.join(max(deadline - time.monotonic(), 0))
            if process.exitcode is None:
                logger.error(
                    "a gateway worker did not exit in time: killed", extra={"pid": process.pid}
                )
                process.kill()
                process.join()
