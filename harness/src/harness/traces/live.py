"""The trace pages served live: what a receiver holds, over HTTP on a local port.

:class:`TraceView` serves, from the spans a
:class:`~harness.traces.receiver.TraceReceiver` keeps, two kinds of page, both rendered
by :mod:`harness.traces.html` (the same waterfall a failed test's page shows):

- ``/``: the traces kept, newest first, each linking to its page;
- ``/traces/<trace id>``: the waterfall of that trace, with the log lines that carry its
  id when the view has a ``logs`` source (:class:`LogFiles` reads services' log files).

It runs a ``ThreadingHTTPServer`` on a thread of its own (``start``/``close``, or a
context manager); ``scripts/dev.py`` starts one for ``make dev``. Anything else is a
404 page that says what exists.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

from harness.traces.html import render_trace_html, render_trace_list_html
from harness.traces.logs import LogRecord, LogRecords
from harness.traces.receiver import TraceReceiver
from harness.traces.spans import Span

__all__ = [
    "LogFiles",
    "TraceView",
]

_TRACE_PATH = re.compile(r"/traces/([0-9a-f]{32})")


class LogFiles:
    """The JSON log lines written to ``paths`` from now on, looked up by trace id.

    Each file's size is noted at construction: what was there before (an earlier run's
    lines) is not read. At most the last ``max_bytes`` of each file are read per lookup.
    """

    def __init__(self, paths: Iterable[Path], *, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._start = {path: _size(path) for path in paths}

    def records(self, trace_id: str) -> list[LogRecord]:
        lines: list[str] = []
        for path, start in self._start.items():
            size = _size(path)
            if size < start:  # replaced or truncated since: all of it is new
                start = 0
            offset = max(start, size - self.max_bytes)
            try:
                with path.open("rb") as file:
                    file.seek(offset)
                    data = file.read(size - offset)
            except OSError:
                continue
            lines.extend(
                line for line in data.decode(errors="replace").splitlines() if trace_id in line
            )
        return LogRecords.parse(lines).with_trace(trace_id)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class TraceView:
    """The pages of ``receiver``'s traces on ``http://host:port/``; a context manager.

    ``logs(trace_id)`` gives the log records shown beside a trace's spans.
    """

    def __init__(
        self,
        receiver: TraceReceiver,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        logs: Callable[[str], Iterable[LogRecord]] | None = None,
        title: str = "recent traces",
    ) -> None:
        self.receiver = receiver
        self.host = host
        self._requested_port = port
        self._logs = logs
        self.title = title
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            return self
        view = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                status, page = view.page(self.path)
                body = page.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # a page view is not worth a line on the developer's terminal

        try:
            server = ThreadingHTTPServer((self.host, self._requested_port), Handler)
        except OSError as error:
            raise OSError(
                f"the trace view could not listen on {self.host}:{self._requested_port}: "
                f"{error.strerror or error}; choose another port (or 0 for a free one)"
            ) from error
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="trace-view", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the trace view is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def page(self, path: str) -> tuple[HTTPStatus, str]:
        """The status and HTML of ``path`` (what a GET of it answers)."""
        path = path.split("?", 1)[0]
        if path in ("/", "/traces", "/traces/"):
            return HTTPStatus.OK, self._list_page()
        match = _TRACE_PATH.fullmatch(path)
        if match:
            spans = self.receiver.snapshot(match[1]).spans
            if spans:
                return HTTPStatus.OK, self._trace_page(match[1], spans)
            return HTTPStatus.NOT_FOUND, _not_found(
                f"No trace {match[1]} here: it never arrived, or it was one of the oldest "
                f"and was forgotten (the last {self.receiver.max_traces} are kept)."
            )
        return HTTPStatus.NOT_FOUND, _not_found(
            f"Nothing at {path}: the list of traces is at /, a trace at "
            "/traces/<32 hex digits of its id>."
        )

    def _list_page(self) -> str:
        kept = self.receiver.max_traces
        note = (
            f"The last {kept} traces received at {self.receiver.endpoint} (newest first)"
            if kept is not None
            else f"Every trace received at {self.receiver.endpoint} (newest first)"
        )
        if self.receiver.forgotten_traces:
            note += f"; {self.receiver.forgotten_traces} older ones forgotten"
        note += ". Reload for new ones."
        return render_trace_list_html(
            [trace.spans for trace in self.receiver.traces()],
            href=lambda trace_id: f"/traces/{trace_id}",
            title=self.title,
            note=note,
        )

    def _trace_page(self, trace_id: str, spans: Sequence[Span]) -> str:
        logs = self._logs(trace_id) if self._logs is not None else ()
        return render_trace_html(
            spans,
            title=f"trace {trace_id}",
            logs=logs,
            back_link=("/", f"← {self.title}"),
        )


def _not_found(text: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>not found</title>'
        f"</head>\n<body>\n<h1>not found</h1>\n<p>{escape(text)}</p>\n"
        '<p><a href="/">recent traces</a></p>\n</body></html>\n'
    )
