"""The gateway's HTTP server: uvicorn on httptools, with two changes to its protocol.

**Malformed HTTP in the error shape.** A request httptools cannot parse (a negative,
non-numeric or overflowing ``Content-Length``, both ``Content-Length`` and
``Transfer-Encoding``, a bad chunk size, a NUL, bare CR or obsolete line folding in a
header, a space in a header name, an invalid method or request target, a bare LF as
line end, an HTTP/2 preface...) never reaches the app: uvicorn answers it itself, with
``400 text/plain "Invalid HTTP request received."``. :class:`GatewayHttpProtocol`
answers ``400`` with the gateway's error body (code ``malformed_http``, the parser's
reason in the message) and ``X-Trace-Id``, logs the reason with that trace id, and
closes the connection: the parser cannot find where the next request would start. A
request line and headers over :data:`MAX_HEAD_BYTES` (httptools sets no limit: a header
that never ends would grow without bound) are ``431 request_head_too_large`` likewise.
The close is gentle: what the client is still sending is read and dropped for a moment,
so that the answer is not destroyed by a reset. Where no answer can be given, none is:
when the route already answered the request whose body turned out malformed (e.g. a 413
before the body was read), that answer stands and the connection closes after it; a
malformed request pipelined behind requests still in flight gets its 400 after their
answers.

**A drain on SIGTERM that loses no request.** uvicorn's shutdown closes the connections
that are idle at that instant: a request the client had just sent on one (unread yet)
gets no answer at all, and a POST is left ambiguous. Here, once the server stops
(:meth:`GatewayHttpProtocol.shutdown`, which uvicorn calls on every open connection of
this process after it stopped accepting):

- a request being read or answered is answered, with ``Connection: close``, and the
  connection closes after the answer; so is every request that arrives later;
- a connection with nothing in progress stays open until it has been quiet for
  :data:`DRAIN_QUIET_SECONDS` (a client using it sends its next request well within
  that, and gets it answered), then closes, and never while request bytes wait unread
  on its socket. A connection quiet that long before the signal closes at once.

What cannot be helped, at the level of TCP: a client that sends on a connection at the
very moment the server closes it after its quiet time (the same race as any keep-alive
timeout; clients retry idempotent requests on a connection closed before any answer,
RFC 9112 §9.3.1), and connections the kernel accepted into the listen backlog in the
instant before the listening socket closed (reset by the kernel). Requests still running
when ``GATEWAY_SHUTDOWN_GRACE_SECONDS`` ends are cancelled.

All of it is per connection, so it works the same in each worker process.
"""

from __future__ import annotations

import fcntl
import http
import logging
import socket
import struct
import termios
import uuid
from collections.abc import Callable
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import TRACE_ID_HEADER, ErrorResponse, error_body

logger = logging.getLogger(__name__)

DRAIN_QUIET_SECONDS = 0.5
# The request line and headers of one request, at most (httptools has no limit of its
# own: a header that never ends would grow without bound). Generous for cookies; h11,
# nginx and Node settle for 8 to 32 KiB.
MAX_HEAD_BYTES = 64 * 1024
# After a refusal, how long the client's remaining bytes are read and dropped before the
# connection closes (see GatewayHttpProtocol.close_with).
LINGER_SECONDS = 2.0


class HeadTooLarge(Exception):
    """Raised in a parser callback: the request's head is over MAX_HEAD_BYTES."""


class GatewayHttpProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection (uvicorn's httptools protocol, see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_open = False  # a request's line and headers are being received
        self.message_open = False  # a request is being received (head or body)
        self.malformed = False  # the parser failed: nothing more is read
        self.last_words: bytes | None = None  # written before closing, once answers are done
        self.draining = False
        self.quiet_since = self.loop.time()
        self.heads_begun = 0
        self.head_bytes = 0  # of the head being received, as the parser reports them
        self.unfinished_head_bytes = 0  # received since, while the head stays incomplete

    # --- parser callbacks (httptools), kept in step with what is being received ---------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_open = self.message_open = True
        self.heads_begun += 1
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def on_headers_complete(self) -> None:
        self.head_open = False
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with Connection: close

    def on_message_complete(self) -> None:
        self.message_open = False
        super().on_message_complete()
        if self.draining:  # the route may have answered before the body ended
            self.loop.call_soon(self._close_when_quiet)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, but a parse error is refused by :meth:`refuse_malformed`, with its reason
        if self.malformed:  # the parser cannot resume after an error
            return
        self._unset_keepalive_if_required()
        head_was_open, heads_begun = self.head_open, self.heads_begun
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, HeadTooLarge):
                self.refuse_head_too_large()
            else:
                self.refuse_malformed(_parser_reason(error))
        except httptools.HttpParserError as error:
            self.refuse_malformed(_parser_reason(error))
        else:
            self._bound_unfinished_head(data, head_was_open and heads_begun == self.heads_begun)

    def _bound_unfinished_head(self, data: bytes, same_head: bool) -> None:
        """The parser keeps a header whose end has not come yet to itself, unbounded: the
        bytes received while a head stays incomplete are counted here (from the first read
        after the one it began in, so the bound is MAX_HEAD_BYTES plus one read)."""
        if not self.head_open:
            return
        self.unfinished_head_bytes = self.unfinished_head_bytes + len(data) if same_head else 0
        if self.unfinished_head_bytes > MAX_HEAD_BYTES:
            self.refuse_head_too_large()

    def on_response_complete(self) -> None:
        last_in_flight = not self.pipeline
        super().on_response_complete()
        self.quiet_since = self.loop.time()
        if last_in_flight and self.last_words is not None:
            self.close_with(self.last_words)

    # --- malformed requests -------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        self.refuse_malformed(msg)

    def refuse_malformed(self, reason: str) -> None:
        self.refuse(400, "malformed_http", f"the request is not valid HTTP/1.1: {reason}")

    def refuse_head_too_large(self) -> None:
        message = f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes"
        self.refuse(431, "request_head_too_large", message)

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer in the error shape where an answer can still be given, and parse no
        more of the connection."""
        self.malformed = True
        trace_id = uuid.uuid4().hex
        logger.warning(
            "HTTP request refused: %s",
            message,
            extra={"trace_id": trace_id, "client": _address(self.client), "status": status},
        )
        answer = _error_response(status, code, message, trace_id)
        cycle = self.cycle
        if self.message_open and not self.head_open and cycle is not None:
            # The body of the request of `cycle` is malformed.
            if cycle.response_started:
                answer = b""  # its route answered already; nothing can follow that answer
            elif self.pipeline and self.pipeline[0][0] is cycle:
                self.pipeline.popleft()  # queued behind requests in flight: never run
                self.last_words = answer
                return
            else:
                # Its route is running: it sees the client gone, the 400 is the answer.
                cycle.disconnected = True
                cycle.message_event.set()
                self.close_with(answer)
                return
        if self.pipeline or (cycle is not None and not cycle.response_complete):
            self.last_words = answer  # after the answers in flight
        else:
            self.close_with(answer)

    def close_with(self, last_words: bytes) -> None:
        """Write ``last_words`` and end the connection, gently: the client may still be
        sending (the rest of a body, a header without end), and closing with its bytes
        unread would reset the connection, which can destroy the answer before the client
        reads it. So only our side is closed; what the client still sends is read and
        dropped until it closes its side, for at most LINGER_SECONDS."""
        if self.transport.is_closing():
            return
        self.transport.write(last_words)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # --- the drain ----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Called by uvicorn on each open connection once the server stopped accepting."""
        self.draining = True
        if self.cycle is not None:
            # the request being answered (or the last pipelined one) ends the connection
            self.cycle.keep_alive = False
        self._close_when_quiet()

    def timeout_keep_alive_handler(self) -> None:
        if self.draining:
            self._close_when_quiet()
        else:
            super().timeout_keep_alive_handler()

    def _close_when_quiet(self) -> None:
        """Close now if nothing is in progress and the connection has been quiet long
        enough, else check again when it will have been (uvicorn's keep-alive timer, which
        a request's first bytes cancel: its answer then closes the connection)."""
        if self.transport.is_closing() or not self._idle():
            return
        wait = self.quiet_since + DRAIN_QUIET_SECONDS - self.loop.time()
        if wait <= 0 and _unread_bytes(self.transport) == 0:
            self.transport.close()
            return
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            max(wait, 0.01), self.timeout_keep_alive_handler
        )

    def _idle(self) -> bool:
        return (
            not self.message_open
            and not self.pipeline
            and (self.cycle is None or self.cycle.response_complete)
        )


def _parser_reason(error: httptools.HttpParserError) -> str:
    # A failure inside a parse callback (e.g. uvicorn parsing the request target) is
    # wrapped: the reason is the error it wraps.
    if isinstance(error, httptools.HttpParserCallbackError) and error.__context__ is not None:
        return str(error.__context__) or "unparsable request"
    return str(error) or "unparsable request"


def _error_response(status: int, code: str, message: str, trace_id: str) -> bytes:
    body = ErrorResponse.model_validate(error_body(code, message, trace_id)).model_dump_json()
    encoded = body.encode()
    return (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(encoded)}\r\n"
        f"{TRACE_ID_HEADER.lower()}: {trace_id}\r\n"
        "connection: close\r\n"
        "\r\n"
    ).encode() + encoded


def _unread_bytes(transport: Any) -> int:
    """How many received bytes wait unread on the connection's socket (0 if unknown)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


def _address(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else ""


class AnnouncingServer(uvicorn.Server):
    """uvicorn, and once it listens the one JSON "serving" line (with the bound port, so
    port 0 works) that launchers wait for, as every service of the kit logs it; or, for a
    worker, ``on_serving`` (its supervisor announces the gateway once all serve)."""

    def __init__(
        self, config: uvicorn.Config, on_serving: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self.on_serving = on_serving

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:  # the bind failed; uvicorn says why
            return
        if self.on_serving is not None:
            self.on_serving()
            return
        port = self.servers[0].sockets[0].getsockname()[1] if self.servers else 0
        logger.info(
            "serving",
            extra={"http_address": f"http://{self.config.host}:{port}", "port": port},
        )
