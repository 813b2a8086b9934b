"""The gateway's HTTP server (``gateway.server``) as an operator runs it: ``python -m gateway``
in production mode, spoken to over raw sockets, since what is tested here happens below
any HTTP client: malformed framing, pipelining, and SIGTERM in the middle of requests.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.server import DRAIN_QUIET_SECONDS, MAX_HEAD_BYTES
from harness import ServiceProcess

# runs the gateway as a process
pytestmark = pytest.mark.integration

SOCKET_TIMEOUT = 5.0


def start_gateway(log_path: Path, workers: int = 1) -> ServiceProcess:
    process = ServiceProcess(
        name="gateway",
        module="gateway",
        env={
            "GATEWAY_PORT": "0",
            "GATEWAY_WORKERS": str(workers),
            "GATEWAY_ENVIRONMENT": "production",
            "GATEWAY_SHUTDOWN_GRACE_SECONDS": "10",
            # nothing listens there: the routes used here answer without the services
            "GATEWAY_AUTH_ADDRESS": "127.0.0.1:9",
            "GATEWAY_USER_ADDRESS": "127.0.0.1:9",
            "GATEWAY_DUMMY_ADDRESS": "127.0.0.1:9",
        },
        log_path=log_path,
        # several workers start several interpreters: generous on a loaded machine
        start_timeout=30.0 * workers,
    )
    process.start()
    return process


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    process = start_gateway(tmp_path_factory.mktemp("gateway") / "gateway.log")
    try:
        yield process
    finally:
        process.stop()


def logged(process: ServiceProcess, text: str, timeout: float = 5.0) -> bool:
    """Whether ``text`` appears in the process's log within ``timeout`` (lines are read
    from its output by a thread: a line just written may not be there yet)."""
    deadline = time.monotonic() + timeout
    while text not in process.log_tail():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, str]:
        """The error of an answer in the gateway's error shape (asserted)."""
        assert self.headers.get("content-type") == "application/json", self
        document = json.loads(self.body)
        assert set(document) == {"error"}, document
        error: dict[str, str] = document["error"]
        assert set(error) == {"code", "message", "trace_id"}, document
        assert error["trace_id"] == self.headers["x-trace-id"], self
        return error


class Connection:
    """One HTTP/1.1 connection over a raw socket: exact bytes out, answers parsed in."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed_by_server(self) -> bool:
        """Whether the server has closed the connection (seen before sending anything)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except ConnectionResetError:
            return True

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        self.buffer += chunk
        return bool(chunk)

    def answer(self) -> Answer | None:
        """The next answer, or None when the connection ends before one begins."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                assert self.buffer == b"", f"a truncated answer: {self.buffer!r}"
                return None
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"{name} twice in {head!r}"
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            assert self._fill(), f"a truncated body: {self.buffer!r}"
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def expect_answer(self) -> Answer:
        answer = self.answer()
        assert answer is not None, "the connection ended without an answer"
        return answer

    def at_end(self) -> bool:
        """Whether the server closed the connection, with nothing more sent."""
        return self.buffer == b"" and not self._fill()


def request(path: str = "/healthz", method: str = "GET", extra: bytes = b"") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: gateway\r\n".encode() + extra + b"\r\n"


# --- framing errors ----------------------------------------------------------------------

CHUNKED_POST = b"POST /entities HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n"

MALFORMED = {
    "negative Content-Length": (CHUNKED_POST + b"Content-Length: -1\r\n\r\n", "Content-Length"),
    "huge Content-Length": (
        CHUNKED_POST + b"Content-Length: 99999999999999999999999\r\n\r\n",
        "Content-Length",
    ),
    "Content-Length not a number": (
        CHUNKED_POST + b"Content-Length: 12abc\r\n\r\n",
        "Content-Length",
    ),
    "two Content-Lengths": (
        CHUNKED_POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "Content-Length",
    ),
    "Content-Length and chunked": (
        CHUNKED_POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Content-Length",
    ),
    "bad chunk size": (
        CHUNKED_POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "chunk size",
    ),
    "negative chunk size": (
        CHUNKED_POST + b"Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
        "chunk size",
    ),
    "NUL in a header": (request(extra=b"X-Note: a\x00b\r\n"), "header value"),
    "bare CR in a header": (request(extra=b"X-Note: a\rb\r\n"), "LF"),
    "obsolete line folding": (request(extra=b"X-Note: a\r\n b\r\n"), "whitespace"),
    "space in a header name": (request(extra=b"X Note: b\r\n"), "header"),
    "invalid method": (b"G@T /healthz HTTP/1.1\r\nHost: g\r\n\r\n", "method"),
    "non-ASCII request target": (b"GET /\xff HTTP/1.1\r\nHost: g\r\n\r\n", "url"),
    "bare LF line ends": (b"GET /healthz HTTP/1.1\nHost: g\n\n", "LF"),
    "an HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ""),
}


@pytest.mark.parametrize(("data", "reason"), MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_http_is_400_in_the_error_shape_then_closed(
    gateway: ServiceProcess, data: bytes, reason: str
) -> None:
    assert gateway.port is not None
    connection = Connection(gateway.port)
    try:
        connection.send(data)
        answer = connection.expect_answer()
        assert answer.status == 400, answer
        error = answer.error()
        assert error["code"] == "malformed_http"
        assert reason.lower() in error["message"].lower(), error
        assert answer.headers["connection"] == "close"
        assert connection.at_end()
    finally:
        connection.close()
    assert logged(gateway, error["trace_id"]), "the refusal is logged with its trace id"


def test_an_answer_to_a_malformed_request_survives_the_rest_the_client_still_sends(
    gateway: ServiceProcess,
) -> None:
    """A bad chunk size at the start of a long body: the 400 is written while the client
    still sends; closing with its bytes unread would reset the connection and could
    destroy the 400 before the client reads it."""
    assert gateway.port is not None
    connection = Connection(gateway.port)
    try:
        head = CHUNKED_POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
        connection.send(head + b"x" * 2_000_000)
        answer = connection.expect_answer()
        assert answer.status == 400, answer
        assert answer.error()["code"] == "malformed_http"
        connection.sock.shutdown(socket.SHUT_WR)  # done: the server closes its side too
        assert connection.at_end()
    finally:
        connection.close()


def big_header(size: int) -> bytes:
    return b"X-Big: " + b"a" * size + b"\r\n"


@pytest.mark.parametrize(
    ("header", "piece", "status"),
    [
        (big_header(MAX_HEAD_BYTES - 1024), None, 200),
        (big_header(MAX_HEAD_BYTES + 1), None, 431),
        (big_header(MAX_HEAD_BYTES - 1024), 1024, 200),
        (big_header(MAX_HEAD_BYTES + 1), 1024, 431),
        # never ends: refused once the bytes of the unfinished head pass the limit
        (b"X-Endless: " + b"a" * 4 * MAX_HEAD_BYTES, 4096, 431),
    ],
    ids=["under-at-once", "over-at-once", "under-in-pieces", "over-in-pieces", "endless"],
)
def test_a_request_head_over_the_limit_is_431_in_the_error_shape(
    gateway: ServiceProcess, header: bytes, piece: int | None, status: int
) -> None:
    assert gateway.port is not None
    connection = Connection(gateway.port)
    data = request(extra=header)
    if status == 431 and header.startswith(b"X-Endless"):
        data = data[: -len(b"\r\n\r\n")]  # the header never ends
    try:
        for start in range(0, len(data), piece or len(data)):
            connection.send(data[start : start + (piece or len(data))])
        answer = connection.expect_answer()
        assert answer.status == status, answer
        if status == 431:
            assert answer.error()["code"] == "request_head_too_large"
            assert connection.at_end()
    finally:
        connection.close()


def test_a_malformed_request_pipelined_behind_good_ones_is_answered_after_them(
    gateway: ServiceProcess,
) -> None:
    assert gateway.port is not None
    connection = Connection(gateway.port)
    try:
        connection.send(request() + request() + b"G@T / HTTP/1.1\r\n\r\n")
        first, second, third = (connection.expect_answer() for _ in range(3))
        assert (first.status, second.status) == (200, 200)
        # each request its own trace, even when it starts as the one before answers
        assert first.headers["x-trace-id"] != second.headers["x-trace-id"]
        assert third.status == 400
        assert third.error()["code"] == "malformed_http"
        assert connection.at_end()
    finally:
        connection.close()


def test_a_malformed_body_while_the_route_reads_it_is_400(gateway: ServiceProcess) -> None:
    """The route (POST /entities reads its JSON body first) is waiting for the body when
    the bad chunk comes: the route is abandoned and the 400 is the answer."""
    assert gateway.port is not None
    connection = Connection(gateway.port)
    try:
        connection.send(CHUNKED_POST + b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
        time.sleep(0.2)  # the route is reading the body now
        connection.send(b"zz\r\n")
        answer = connection.expect_answer()
        assert answer.status == 400, answer
        assert answer.error()["code"] == "malformed_http"
        assert connection.at_end()
    finally:
        connection.close()


def test_a_malformed_body_after_the_route_answered_ends_the_connection(
    gateway: ServiceProcess,
) -> None:
    """POST /logout without the CSRF header is refused before its body is read; a bad
    chunk after that answer gets no second answer: the connection closes."""
    assert gateway.port is not None
    connection = Connection(gateway.port)
    try:
        connection.send(
            b"POST /logout HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n"
        )
        answer = connection.expect_answer()
        assert answer.status == 403, answer
        connection.send(b"zz\r\n")
        assert connection.at_end()
    finally:
        connection.close()


# --- the drain on SIGTERM ----------------------------------------------------------------


@dataclass
class Client:
    """A keep-alive client that sends ``requests`` one after another, ``pause`` apart,
    until the server closes its connection, noting how each request ended."""

    port: int
    pause: float = 0.0
    first: bytes = field(default_factory=request)
    answers: list[Answer] = field(default_factory=list)
    closed_before_sending: bool = False
    lost: list[str] = field(default_factory=list)  # sent, then the connection ended
    # sent at least DRAIN_QUIET_SECONDS after the request before it (or the connect), then
    # the connection ended: the keep-alive race the drain cannot help (gateway.server's
    # docstring), possible only when this thread was held up that long (a loaded machine)
    raced: list[str] = field(default_factory=list)

    def run(self, stop_at: float) -> None:
        # The server closes a connection only once it has been quiet DRAIN_QUIET_SECONDS
        # since its last answer, which came after the last send: a request sent sooner
        # than that after the one before cannot have met a close, and losing it is a bug.
        last_sent = time.monotonic()
        connection = Connection(self.port)
        data = self.first
        try:
            while time.monotonic() < stop_at:
                if connection.closed_by_server():
                    self.closed_before_sending = True
                    return
                sent = time.monotonic()
                connection.send(data)
                answer = connection.answer()
                if answer is None:
                    late = sent - last_sent >= DRAIN_QUIET_SECONDS
                    (self.raced if late else self.lost).append(
                        data.decode("latin-1").splitlines()[0]
                    )
                    return
                last_sent = sent
                self.answers.append(answer)
                if answer.headers.get("connection") == "close":
                    assert connection.at_end(), "Connection: close, and yet more was sent"
                    return
                data = request()
                time.sleep(self.pause)
        finally:
            connection.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_answers_every_request_already_sent_or_closes_before_one_is(
    tmp_path: Path, workers: int
) -> None:
    process = start_gateway(tmp_path / "gateway.log", workers)
    assert process.port is not None
    port = process.port
    busy = [Client(port) for _ in range(6)]  # back to back, as a loaded proxy would
    paced = [Client(port, pause=DRAIN_QUIET_SECONDS / 5) for _ in range(3)]
    idle = Connection(port)  # opened and never used: closed once the drain starts
    # one request whose head and body are still arriving when the signal comes
    slow = Connection(port)
    slow.send(b"POST /entities HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n")
    clients = busy + paced
    stop_at = time.monotonic() + 10
    threads = [threading.Thread(target=client.run, args=(stop_at,)) for client in clients]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    signalled = time.monotonic()
    assert process.pid is not None
    os.kill(process.pid, signal.SIGTERM)
    time.sleep(0.2)
    slow.send(b"Content-Length: 2\r\n\r\n{}")
    for thread in threads:
        thread.join(timeout=15)
    try:
        slow_answer = slow.answer()
        idle_closed = idle.at_end()
    finally:
        code = process.stop()  # waits for the exit
        slow.close()
        idle.close()
    drained = time.monotonic() - signalled
    print(f"drained and exited {drained:.2f}s after SIGTERM")

    for client in clients:
        assert client.lost == [], f"sent, never answered: {client.lost}"
        assert client.answers, "the client got no answer at all"
        # each connection ended cleanly: an answer saying close, a close before a send, or
        # (a held-up client only) a send that met the close after the quiet time
        ended_by_answer = client.answers[-1].headers.get("connection") == "close"
        assert ended_by_answer or client.closed_before_sending or client.raced, client.answers[-1]
    # the race needs a client held up a whole quiet time: some of the busy ones never are
    assert sum(not client.raced for client in busy) > 0, [c.raced for c in busy]
    assert slow_answer is not None, "the request being read at the signal was not answered"
    assert slow_answer.headers.get("connection") == "close"
    # it reached the routes: refused there for its missing CSRF header
    assert slow_answer.error()["code"] == "csrf_header_missing", slow_answer
    assert idle_closed
    # uvicorn raises the signal again once it has shut down: the exit is SIGTERM's, as
    # a process manager expects of a process it stopped
    assert code in (0, -signal.SIGTERM), process.log_tail()
