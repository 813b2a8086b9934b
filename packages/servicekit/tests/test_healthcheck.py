"""``python -m servicekit.healthcheck --http URL``: the gateway image's health check."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from servicekit.healthcheck import main

pytestmark = pytest.mark.integration  # a loopback HTTP server


class Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet


@pytest.fixture
def server() -> Iterator[str]:
    http = HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_address[1]}"
    http.shutdown()
    http.server_close()


@pytest.mark.parametrize(
    ("path", "code"), [("/healthz", 0), ("/broken", 1)], ids=["200 is healthy", "503 is not"]
)
def test_http_check(server: str, path: str, code: int) -> None:
    assert main(["--http", f"{server}{path}", "--timeout", "2"]) == code


def test_nothing_listening_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--http", "http://127.0.0.1:9/healthz", "--timeout", "1"]) == 1
    assert "unhealthy" in capsys.readouterr().err
