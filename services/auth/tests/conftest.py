"""Fixtures of the auth unit tests: a frozen clock, respx in front of every HTTP call,
and the provider adapters wired to the fakes of ``fixtures.oauth``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
import respx

from auth.oauth.github import GitHubProvider
from auth.oauth.google import GoogleProvider
from fixtures.clock import FrozenClock
from fixtures.oauth import FakeGitHub, FakeGoogle

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """Every HTTP request of the test goes to respx; an unrouted one fails the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def http(router: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def fake_google(router: respx.MockRouter, clock: FrozenClock) -> FakeGoogle:
    return FakeGoogle(clock=clock).install(router)


@pytest.fixture
def google(fake_google: FakeGoogle, http: httpx.AsyncClient, clock: FrozenClock) -> GoogleProvider:
    return GoogleProvider(fake_google.settings(), http, clock=clock)


@pytest.fixture
def fake_github(router: respx.MockRouter) -> FakeGitHub:
    return FakeGitHub().install(router)


@pytest.fixture
def github(fake_github: FakeGitHub, http: httpx.AsyncClient) -> GitHubProvider:
    return GitHubProvider(fake_github.settings(), http)
