"""The pytest plugin ``harness`` (entry point ``pytest11``): options, marker, header, fixtures."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from harness import config as _config
from harness.backends.choice import default_postgres_image, docker_unavailable, resolve_backend
from harness.config import BackendChoice, ContractTarget, postgres_binaries
from harness.contracts import recording as _recording
from harness.fixtures import (
    clean_databases,
    grpc_mocks,
    harness_backend_name,
    harness_config,
    harness_contract_target,
    harness_databases,
    harness_host,
    harness_services,
    harness_stack_backend,
    http_fake_server,
    http_fakes,
    postgres_databases,
    postgres_server,
    service_stacks,
    stack,
    trace_receiver,
    traces,
)
from harness.stacks.checked_calls import ALLOW_UNDECLARED_MARKER
from harness.stacks.marker import STACK_MARKER
from harness.stacks.report import stack_diagnostics

__all__ = [
    "clean_databases",
    "grpc_mocks",
    "harness_backend_name",
    "harness_config",
    "harness_contract_target",
    "harness_databases",
    "harness_host",
    "harness_services",
    "harness_stack_backend",
    "http_fake_server",
    "http_fakes",
    "postgres_databases",
    "postgres_server",
    "service_stacks",
    "stack",
    "trace_receiver",
    "traces",
]

MARKERS = (
    "integration: the test runs real infrastructure (Postgres, service processes or "
    "containers); deselect with -m 'not integration'",
    "docker: the test needs a Docker engine; skipped, with the reason, when none answers",
    STACK_MARKER,
    ALLOW_UNDECLARED_MARKER,
    _recording.CONSUMER_MARKER,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    _config.add_options(parser)
    _recording.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    settings = _config.configure(config)
    _recording.configure(config)
    if settings.contract_target is ContractTarget.IMAGE:
        problem = docker_unavailable()
        if problem is not None:
            raise pytest.UsageError(
                f"--harness-contract-target=image runs each service from its container "
                f"image, but no Docker engine answers: {problem}. Start Docker, or verify "
                "the service as a process: --harness-contract-target=process"
            )


# A test that reaches any of these (directly or through other fixtures) runs real
# infrastructure: it is marked `integration` without having to say so.
# A test that reaches the contract target verifies a real service (in-process on Postgres,
# or booted), whichever fixture the conftest serves it from.
INFRASTRUCTURE_FIXTURES = frozenset(
    {
        "postgres_server",
        "harness_stack_backend",
        "trace_receiver",
        "http_fake_server",
        "harness_contract_target",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    docker_tests = []
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & INFRASTRUCTURE_FIXTURES and item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("docker") is not None:
            docker_tests.append(item)
    problem = docker_unavailable() if docker_tests else None
    if problem is not None:
        for item in docker_tests:
            item.add_marker(pytest.mark.skip(reason=f"no Docker engine: {problem}"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = _config.get_config(config)
    try:
        binaries = postgres_binaries(config)
        postgres = f"PostgreSQL {binaries.version} in {binaries.bindir} ({binaries.found_by})"
    except Exception as error:  # the header must not fail a run that may never need Postgres
        postgres = f"PostgreSQL not usable: {str(error).splitlines()[0]}"
    backend = resolve_backend(settings.backend)
    chosen = "auto" if settings.backend == "auto" else "chosen"
    if settings.contract_target.backend is not None:
        chosen = f"by the contract target {settings.contract_target.value}"
    if backend is BackendChoice.DOCKER:
        try:
            image = settings.postgres_image or default_postgres_image()
            stacks_postgres = f"Postgres from the image {image}"
        except Exception as error:  # as above: the header never fails the run
            stacks_postgres = f"Postgres image not known: {str(error).splitlines()[0]}"
    else:
        stacks_postgres = "Postgres: the one above"
    return [
        # the local server: postgres_server, repository tests, the process backend's stacks
        f"harness: {postgres} (postgres_server)",
        f"harness: db reset strategy: {settings.db_reset}",
        f"harness: stack backend: {backend} ({chosen}), {stacks_postgres}",
        f"harness: contract target: {settings.contract_target}",
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used a stack carries its services' log tails."""
    report = yield
    if report.failed:
        trace_html = _config.get_config(item.config).trace_html
        for title, text in stack_diagnostics(item, trace_html).items():
            report.sections.append((title, text))
    return report
