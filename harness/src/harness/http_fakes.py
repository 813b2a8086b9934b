"""HTTP fakes of third parties (OAuth providers, payment APIs, webhooks), served where a
stack's services reach them.

A fake is a plain function ``httpx.Request -> httpx.Response``: the same function a unit
test mounts with ``httpx.MockTransport`` or respx. :class:`HttpFakeServer` serves any
number of them, each under a path prefix, on a real port, so that services running as
processes or containers call it over the network as they would call the real API:

    server = HttpFakeServer("127.0.0.1").start()
    google = FakeGoogle(base_url=server.url + "/google")
    server.mount("/google", google.handle)
    # point the service at f"{server.url}/google/token"...

Each request reaches its fake rebuilt as an ``httpx.Request`` whose URL is the one the
service used (scheme, the Host header it sent, path, query), so a fake compares URLs
exactly as it does in unit tests. Requests are answered one at a time (fakes need no
locking) and recorded in ``requests``. A fake that raises answers 500 with the error and
keeps it in ``errors``: ``raise_errors()`` turns it into the test's failure.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import httpx

from harness.errors import HttpFakeError

__all__ = ["MAX_BODY_BYTES", "FakeError", "Handler", "HttpFakeServer"]

Handler = Callable[[httpx.Request], httpx.Response]
MAX_BODY_BYTES = 16 * 1024 * 1024
# Headers the server itself writes (the body is re-framed with its own length).
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class FakeError:
    """A request a fake failed on, and the error it raised."""

    request: httpx.Request
    error: str


class HttpFakeServer:
    """Serves fakes on ``bind_host``; services reach it as ``advertised_host`` (a
    container names the test machine differently)."""

    def __init__(
        self, bind_host: str = "127.0.0.1", *, advertised_host: str | None = None, port: int = 0
    ) -> None:
        self.bind_host = bind_host
        self.advertised_host = advertised_host or bind_host
        self._requested_port = port
        self._mounts: dict[str, Handler] = {}
        self._lock = threading.Lock()  # one request at a time reaches the fakes
        self.requests: list[httpx.Request] = []
        self.errors: list[FakeError] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------- life

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer(
            (self.bind_host, self._requested_port), _handler_class(self)
        )
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # close() waits for the loop to notice
            name="harness-http-fakes",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------- wiring

    @property
    def port(self) -> int:
        if self._server is None:
            raise HttpFakeError("the fake server is not started: call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where services reach the server, e.g. ``http://host.docker.internal:41234``."""
        return f"http://{self.advertised_host}:{self.port}"

    @property
    def local_url(self) -> str:
        """Where the test process reaches it."""
        return f"http://{self.bind_host}:{self.port}"

    def mount(self, prefix: str, handler: Handler) -> str:
        """Serve ``handler`` for every path under ``prefix`` (e.g. "/google"); returns the
        URL services use for it. The longest matching prefix wins."""
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise HttpFakeError(
                f"a mount prefix starts with / and does not end with it: {prefix!r}"
            )
        with self._lock:
            self._mounts[prefix] = handler
        return f"{self.url}{prefix}"

    def reset(self) -> None:
        """Forget recorded requests and errors (the fakes keep their own state)."""
        with self._lock:
            self.requests.clear()
            self.errors.clear()

    def raise_errors(self) -> None:
        """Fail with every error a fake raised since the last reset."""
        __tracebackhide__ = True
        with self._lock:
            errors = list(self.errors)
        if errors:
            details = "\n\n".join(f"{e.request.method} {e.request.url}\n{e.error}" for e in errors)
            raise HttpFakeError(f"{len(errors)} request(s) broke an HTTP fake:\n{details}")

    # ------------------------------------------------------------------- serving

    def answer(self, request: httpx.Request) -> httpx.Response:
        """The response of the mounted fake (404 when none is mounted there)."""
        with self._lock:
            self.requests.append(request)
            path = request.url.path
            matches = [p for p in self._mounts if path == p or path.startswith(p + "/")]
            if not matches:
                mounted = sorted(self._mounts)
                return httpx.Response(
                    404, json={"error": f"no fake is mounted at {path}; mounted: {mounted}"}
                )
            handler = self._mounts[max(matches, key=len)]
            try:
                response = handler(request)
                response.read()
            except Exception:  # a fake's bug is reported; it never stops the server
                error = traceback.format_exc()
                self.errors.append(FakeError(request, error))
                return httpx.Response(500, text=f"the fake raised:\n{error}")
            return response


def _handler_class(server: HttpFakeServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections

        def _serve(self) -> None:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                self._write(httpx.Response(411, text="send a Content-Length (no chunked bodies)"))
                return
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._write(httpx.Response(413, text=f"body over {MAX_BODY_BYTES} bytes"))
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            host = self.headers.get("host") or f"{server.advertised_host}:{server.port}"
            request = httpx.Request(
                self.command,
                f"http://{host}{self.path}",
                headers=list(self.headers.items()),
                content=body,
            )
            self._write(server.answer(request))

        def _write(self, response: httpx.Response) -> None:
            body = response.content
            self.send_response(response.status_code)
            for name, value in response.headers.multi_items():
                if name.lower() not in _FRAMING_HEADERS:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: requests are recorded in ``server.requests`` instead."""

    return _Handler
