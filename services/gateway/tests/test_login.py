"""/user/me, logout, the OAuth login routes and the development login."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest

from auth import auth_pb2
from fixtures.gateway import CSRF, assert_error, set_cookies
from user import user_pb2

from .support import (
    TOKEN,
    USER_ID,
    Gateway,
    GatewayFactory,
    session,
    user_pb,
)

# --- users and logout --------------------------------------------------------------------


async def test_me_is_the_session_user(logged_in: Gateway) -> None:
    logged_in.user.when(lambda s: s.GetUser).returns(user_pb2.GetUserResponse(user=user_pb()))
    response = await logged_in.http.get("/user/me")
    assert response.status_code == 200
    assert response.json()["email"] == "ann@example.com"
    logged_in.user.verify(lambda s: s.GetUser).called_once_with(user_pb2.GetUserRequest(id=USER_ID))


async def test_logout_deletes_the_session_and_expires_the_cookie(logged_in: Gateway) -> None:
    logged_in.auth.when(lambda s: s.DeleteSession).returns(auth_pb2.DeleteSessionResponse())
    response = await logged_in.http.post("/logout", headers=CSRF)
    assert response.status_code == 204
    cookie = set_cookies(response).get("session")
    assert cookie is not None
    assert "Max-Age=0" in cookie
    logged_in.auth.verify(lambda s: s.DeleteSession).called_once_with(
        auth_pb2.DeleteSessionRequest(token=TOKEN)
    )


# --- OAuth login -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/auth/myspace/login", "/auth/myspace/callback?code=c&state=s"])
async def test_an_unknown_provider_is_404(gw: Gateway, path: str) -> None:
    assert_error(await gw.http.get(path), 404, "unknown_provider")
    assert gw.auth.all_calls() == []


async def test_login_redirects_with_state_and_verifier_cookies(gw: Gateway) -> None:
    gw.auth.when(lambda s: s.StartOauthLogin).returns(
        auth_pb2.StartOauthLoginResponse(
            authorization_url="https://idp.example/auth?x=1", state="st", code_verifier="ver"
        )
    )
    response = await gw.http.get("/auth/google/login")
    assert response.status_code == 302
    assert response.headers["location"] == "https://idp.example/auth?x=1"
    for name, value in [("oauth_state", "st"), ("oauth_verifier", "ver")]:
        cookie = set_cookies(response).get(name)
        assert cookie is not None
        assert cookie.startswith(f"{name}={value};")
        assert "HttpOnly" in cookie
        assert "Max-Age=600" in cookie
    gw.auth.verify(lambda s: s.StartOauthLogin).called_once_with(
        auth_pb2.StartOauthLoginRequest(provider=auth_pb2.PROVIDER_GOOGLE)
    )


async def test_a_callback_with_a_mismatching_state_is_400(gw: Gateway) -> None:
    gw.auth.when(lambda s: s.HandleOauthCallback).fails(
        grpc.StatusCode.INVALID_ARGUMENT, "state does not match"
    )
    gw.http.cookies.set("oauth_state", "kept")
    response = await gw.http.get("/auth/github/callback?code=c&state=forged")
    assert_error(response, 400, "invalid_argument")
    assert set_cookies(response).get("session") is None
    gw.auth.verify(lambda s: s.HandleOauthCallback).called_once_with(
        auth_pb2.HandleOauthCallbackRequest(
            provider=auth_pb2.PROVIDER_GITHUB, code="c", state="forged", expected_state="kept"
        )
    )
    gw.auth.verify(lambda s: s.CreateSession).never_called()


@pytest.mark.parametrize(
    "cookie",
    [
        "oauth_state=kept; oauth_state=forged; oauth_verifier=ver",
        "oauth_state=forged; oauth_state=kept; oauth_verifier=ver",
        "oauth_state=kept; oauth_verifier=ver; oauth_verifier=other",
        "oauth_state=kept; oauth_verifier=other; oauth_verifier=ver",
    ],
    ids=["state-kept-first", "state-kept-last", "verifier-kept-first", "verifier-kept-last"],
)
async def test_an_oauth_cookie_sent_twice_is_400_ambiguous(gw: Gateway, cookie: str) -> None:
    response = await gw.http.get(
        "/auth/google/callback?code=c&state=kept", headers={"cookie": cookie}
    )
    assert_error(response, 400, "ambiguous_cookie")
    assert gw.auth.all_calls() == []


async def test_a_good_callback_creates_and_links_the_user_and_logs_in(gw: Gateway) -> None:
    identity = auth_pb2.OauthIdentity(
        provider=auth_pb2.PROVIDER_GOOGLE,
        provider_user_id="g-1",
        email="ann@example.com",
        name="Ann",
    )
    gw.auth.when(lambda s: s.HandleOauthCallback).returns(
        auth_pb2.HandleOauthCallbackResponse(identity=identity)
    )
    gw.user.when(lambda s: s.GetUserByEmail).fails(grpc.StatusCode.NOT_FOUND, "no such user")
    gw.user.when(lambda s: s.CreateUser).returns(user_pb2.CreateUserResponse(user=user_pb()))
    gw.auth.when(lambda s: s.LinkOauthAccount).returns(auth_pb2.LinkOauthAccountResponse())
    gw.auth.when(lambda s: s.CreateSession).returns(
        auth_pb2.CreateSessionResponse(session=session(), token="new.token")
    )
    gw.http.cookies.set("oauth_state", "st")
    gw.http.cookies.set("oauth_verifier", "ver")

    response = await gw.http.get("/auth/google/callback?code=c&state=st")

    assert response.status_code == 303, response.text
    assert response.headers["location"] == gw.settings.public_base_url
    cookie = set_cookies(response).get("session")
    assert cookie is not None
    assert cookie.startswith("session=new.token;")
    for name in ("oauth_state", "oauth_verifier"):
        expired = set_cookies(response).get(name)
        assert expired is not None
        assert "Max-Age=0" in expired
    gw.auth.verify(lambda s: s.HandleOauthCallback).called_once_with(
        auth_pb2.HandleOauthCallbackRequest(
            provider=auth_pb2.PROVIDER_GOOGLE,
            code="c",
            state="st",
            expected_state="st",
            code_verifier="ver",
        )
    )
    gw.user.verify(lambda s: s.CreateUser).called_once_with(
        user_pb2.CreateUserRequest(email="ann@example.com", name="Ann")
    )
    gw.auth.verify(lambda s: s.LinkOauthAccount).called_once_with(
        auth_pb2.LinkOauthAccountRequest(
            provider=auth_pb2.PROVIDER_GOOGLE, provider_user_id="g-1", user_id=USER_ID
        )
    )
    gw.auth.verify(lambda s: s.CreateSession).called_once_with(
        auth_pb2.CreateSessionRequest(user_id=USER_ID)
    )


async def test_a_callback_of_a_linked_account_only_creates_a_session(gw: Gateway) -> None:
    gw.auth.when(lambda s: s.HandleOauthCallback).returns(
        auth_pb2.HandleOauthCallbackResponse(
            identity=auth_pb2.OauthIdentity(provider_user_id="g-1"), user_id=USER_ID
        )
    )
    gw.auth.when(lambda s: s.CreateSession).returns(
        auth_pb2.CreateSessionResponse(session=session(), token="new.token")
    )
    response = await gw.http.get("/auth/google/callback?code=c&state=st")
    assert response.status_code == 303
    assert gw.user.all_calls() == []
    gw.auth.verify(lambda s: s.LinkOauthAccount).never_called()


# --- development login -------------------------------------------------------------------


async def test_dev_login_finds_the_user_and_sets_the_session_cookie(gw: Gateway) -> None:
    gw.user.when(lambda s: s.GetUserByEmail).returns(
        user_pb2.GetUserByEmailResponse(user=user_pb())
    )
    gw.auth.when(lambda s: s.CreateSession).returns(
        auth_pb2.CreateSessionResponse(session=session(), token="dev.token")
    )
    response = await gw.http.post(
        "/auth/dev/login", json={"email": "ann@example.com"}, headers=CSRF
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == USER_ID
    cookie = set_cookies(response).get("session")
    assert cookie is not None
    assert cookie.startswith("session=dev.token;")
    gw.user.verify(lambda s: s.CreateUser).never_called()


DEV_LOGIN_PROBES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "valid", {"json": {"email": "ann@example.com"}, "headers": CSRF}),
    ("POST", "no CSRF header", {"json": {"email": "ann@example.com"}}),
    ("POST", "invalid body", {"json": {"mail": 1}, "headers": CSRF}),
    ("POST", "not JSON", {"content": b"{", "headers": CSRF}),
    ("GET", "GET", {}),
    ("OPTIONS", "OPTIONS", {}),
    ("DELETE", "DELETE", {"headers": CSRF}),
]


@pytest.mark.parametrize(
    ("method", "probe"),
    [pytest.param(method, kwargs, id=case) for method, case, kwargs in DEV_LOGIN_PROBES],
)
async def test_dev_login_outside_local_is_a_route_that_does_not_exist(
    make_gateway: GatewayFactory, method: str, probe: dict[str, Any]
) -> None:
    """Whatever is sent, the answer is the one of a path no route has (``/auth/nosuch/login``:
    POST there is 405 as ``GET /auth/{provider}/login`` exists), CSRF and body unchecked."""

    def seen(response: httpx.Response, segment: str) -> tuple[int, str, dict[str, str]]:
        trace_id = response.headers["x-trace-id"]
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in {"x-trace-id", "content-length"}
        }
        return (
            response.status_code,
            response.text.replace(trace_id, "").replace(segment, "?"),
            headers,
        )

    async with make_gateway(environment="production") as gw:
        dev = await gw.http.request(method, "/auth/dev/login", **probe)
        missing = await gw.http.request(method, "/auth/nosuch/login", **probe)
        assert dev.status_code in {404, 405}, dev.text
        assert seen(dev, "dev") == seen(missing, "nosuch")
        assert "/auth/dev/login" not in (await gw.http.get("/openapi.json")).json()["paths"]
        assert gw.user.all_calls() == []
        assert gw.auth.all_calls() == []


# --- more edges of login, logout and settings --------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [None, grpc.StatusCode.UNAUTHENTICATED],
    ids=["deleted", "already-gone"],
)
async def test_logout_always_expires_the_cookie(
    logged_in: Gateway, answer: grpc.StatusCode | None
) -> None:
    behaviour = logged_in.auth.when(lambda s: s.DeleteSession)
    if answer is None:
        behaviour.returns(auth_pb2.DeleteSessionResponse())
    else:
        behaviour.fails(answer, "gone")
    response = await logged_in.http.post("/logout", headers=CSRF)
    assert response.status_code == 204
    cookie = set_cookies(response).get("session")
    assert cookie is not None
    assert "Max-Age=0" in cookie


async def test_a_login_the_user_refused_is_403(gw: Gateway) -> None:
    response = await gw.http.get("/auth/google/callback?error=access_denied&state=st")
    assert_error(response, 403, "oauth_refused")
    assert gw.auth.all_calls() == []


async def test_a_user_created_concurrently_is_found_again(gw: Gateway) -> None:
    gw.user.when(lambda s: s.GetUserByEmail).fails(
        grpc.StatusCode.NOT_FOUND, "none"
    ).then().returns(user_pb2.GetUserByEmailResponse(user=user_pb()))
    gw.user.when(lambda s: s.CreateUser).fails(grpc.StatusCode.ALREADY_EXISTS, "taken")
    gw.auth.when(lambda s: s.CreateSession).returns(
        auth_pb2.CreateSessionResponse(session=session(), token="dev.token")
    )
    response = await gw.http.post(
        "/auth/dev/login", json={"email": "ann@example.com"}, headers=CSRF
    )
    assert response.status_code == 200, response.text
    gw.user.verify(lambda s: s.GetUserByEmail).called_times(2)
