"""HTTP fakes served on a real port, the browser-like client, and HTTP service specs.

The server is exercised over real loopback sockets with httpx, as a service calls it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from harness import HttpFakeError, HttpFakeServer, ServiceSpec
from harness.browser import browser_client, is_loopback


@pytest.fixture
def server() -> Iterator[HttpFakeServer]:
    with HttpFakeServer("127.0.0.1") as running:
        yield running


def echo(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        201,
        json={
            "method": request.method,
            "url": str(request.url),
            "body": request.content.decode(),
            "header": request.headers.get("x-probe", ""),
        },
        headers={"x-fake": "echo"},
    )


def test_a_mounted_fake_sees_the_url_the_client_used(server: HttpFakeServer) -> None:
    base = server.mount("/api", echo)
    assert base == f"http://127.0.0.1:{server.port}/api"
    with httpx.Client(trust_env=False) as http:
        answer = http.post(f"{base}/things?x=1", content=b"hello", headers={"x-probe": "p"})
    assert answer.status_code == 201
    assert answer.headers["x-fake"] == "echo"
    assert answer.json() == {
        "method": "POST",
        "url": f"http://127.0.0.1:{server.port}/api/things?x=1",
        "body": "hello",
        "header": "p",
    }
    assert [str(request.url) for request in server.requests] == [answer.json()["url"]]


def test_the_url_names_the_advertised_host_and_the_fake_sees_the_host_header() -> None:
    with HttpFakeServer("127.0.0.1", advertised_host="host.docker.internal") as server:
        server.mount("/api", echo)
        assert server.url == f"http://host.docker.internal:{server.port}"
        with httpx.Client(trust_env=False) as http:
            answer = http.get(
                f"{server.local_url}/api/x", headers={"host": f"host.docker.internal:{server.port}"}
            )
        assert answer.json()["url"] == f"http://host.docker.internal:{server.port}/api/x"


@pytest.mark.parametrize(
    ("path", "answered_by"),
    [
        ("/a", "a"),
        ("/a/x", "a"),
        ("/a-b/x", "a-b"),  # a prefix matches whole path segments only
        ("/a/b/x", "a/b"),  # the longest prefix wins
    ],
)
def test_the_longest_mounted_prefix_answers(
    server: HttpFakeServer, path: str, answered_by: str
) -> None:
    def answering(name: str) -> Callable[[httpx.Request], httpx.Response]:
        return lambda request: httpx.Response(200, text=name)

    for prefix in ("a", "a-b", "a/b"):
        server.mount(f"/{prefix}", answering(prefix))
    with httpx.Client(trust_env=False) as http:
        assert http.get(f"{server.local_url}{path}").text == answered_by


def test_nothing_mounted_is_a_404_that_lists_the_mounts(server: HttpFakeServer) -> None:
    server.mount("/google", echo)
    with httpx.Client(trust_env=False) as http:
        answer = http.get(f"{server.local_url}/github/login")
    assert answer.status_code == 404
    assert "/github/login" in answer.json()["error"]
    assert "/google" in answer.json()["error"]


def test_a_fake_that_raises_answers_500_and_fails_the_test_later(server: HttpFakeServer) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise KeyError("no such grant")

    server.mount("/broken", broken)
    with httpx.Client(trust_env=False) as http:
        answer = http.get(f"{server.local_url}/broken/token")
        assert answer.status_code == 500
        assert "KeyError" in answer.text
        assert http.get(f"{server.local_url}/broken/again").status_code == 500  # still serving
    with pytest.raises(HttpFakeError, match=r"2 request\(s\) broke an HTTP fake") as raised:
        server.raise_errors()
    assert "/broken/token" in str(raised.value)
    server.reset()
    server.raise_errors()  # forgotten with the requests
    assert server.requests == []


@pytest.mark.parametrize("prefix", ["google", "/google/", ""])
def test_a_bad_prefix_is_refused(server: HttpFakeServer, prefix: str) -> None:
    with pytest.raises(HttpFakeError, match="mount prefix"):
        server.mount(prefix, echo)


def test_an_unstarted_server_has_no_url() -> None:
    with pytest.raises(HttpFakeError, match="not started"):
        _ = HttpFakeServer().url


def test_requests_reach_the_fakes_one_at_a_time(server: HttpFakeServer) -> None:
    inside = 0
    most = 0
    lock = threading.Lock()

    def counting(request: httpx.Request) -> httpx.Response:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        threading.Event().wait(0.01)
        with lock:
            inside -= 1
        return httpx.Response(204)

    server.mount("/count", counting)

    def call() -> None:
        with httpx.Client(trust_env=False) as http:
            for _ in range(5):
                assert http.get(f"{server.local_url}/count").status_code == 204

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(server.requests) == 20
    assert most == 1


def test_a_chunked_body_is_refused_with_411(server: HttpFakeServer) -> None:
    server.mount("/api", echo)

    def chunks() -> Iterator[bytes]:
        yield b"part"

    with httpx.Client(trust_env=False) as http:
        answer = http.post(f"{server.local_url}/api", content=chunks())
    assert answer.status_code == 411


# ------------------------------------------------------------------------ the browser client

SECURE_COOKIE = "sid=1; HttpOnly; Max-Age=600; Path=/; SameSite=lax; Secure"


def cookie_setter(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/set":
        return httpx.Response(204, headers={"set-cookie": SECURE_COOKIE})
    return httpx.Response(200, text=request.headers.get("cookie", "(none)"))


@pytest.mark.parametrize(
    ("host", "sent"),
    [
        ("127.0.0.1", "sid=1"),
        ("localhost", "sid=1"),
        ("[::1]", "sid=1"),
        ("example.com", "(none)"),  # Secure over plain HTTP elsewhere: not sent, as ever
        ("10.0.0.1", "(none)"),
    ],
)
async def test_the_browser_sends_secure_cookies_to_loopback_only(host: str, sent: str) -> None:
    async with browser_client(
        f"http://{host}:8080", transport=httpx.MockTransport(cookie_setter)
    ) as browser:
        await browser.get("/set")
        assert (await browser.get("/get")).text == sent


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("localhost", True),
        ("localhost.local", True),  # how http.cookiejar stores a dotless host
        ("app.localhost", True),
        ("localhost.example.com", False),
        ("192.168.1.2", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# ------------------------------------------------------------------------ HTTP service specs


def test_an_http_service_reads_host_and_port_and_a_grpc_service_its_grpc_ones() -> None:
    gateway = ServiceSpec("gateway", http_port=8080)
    dummy = ServiceSpec("dummy", grpc_port=50053)
    assert (gateway.is_http, gateway.port, gateway.host_setting, gateway.port_setting) == (
        True,
        8080,
        "GATEWAY_HOST",
        "GATEWAY_PORT",
    )
    assert (dummy.is_http, dummy.port, dummy.host_setting, dummy.port_setting) == (
        False,
        50053,
        "DUMMY_GRPC_HOST",
        "DUMMY_GRPC_PORT",
    )


@pytest.mark.parametrize(("grpc_port", "http_port"), [(0, 0), (50051, 8080)])
def test_a_service_has_exactly_one_kind_of_port(grpc_port: int, http_port: int) -> None:
    with pytest.raises(ValueError, match="exactly one of grpc_port and http_port"):
        ServiceSpec("odd", grpc_port=grpc_port, http_port=http_port)


# ------------------------------------------------------------------------ the fixtures

FAKE_USING_TESTS = """
import httpx


def broken(request):
    raise RuntimeError("the fake has a bug")


def test_a_service_hits_a_broken_fake(http_fakes):
    http_fakes.mount("/api", broken)
    with httpx.Client(trust_env=False) as http:
        assert http.get(http_fakes.local_url + "/api/x").status_code == 500


def test_the_next_test_starts_with_no_requests(http_fakes):
    assert http_fakes.requests == []
    http_fakes.mount("/api", lambda request: httpx.Response(204))
    with httpx.Client(trust_env=False) as http:
        assert http.get(http_fakes.local_url + "/api/x").status_code == 204
    assert len(http_fakes.requests) == 1
"""


def test_a_fake_that_raised_fails_its_test_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    pytester.makepyfile(test_fakes=FAKE_USING_TESTS)
    result = pytester.runpytest("--harness-backend=process", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_a_service_hits_a_broken_fake*",
            "*RuntimeError: the fake has a bug*",
        ]
    )
