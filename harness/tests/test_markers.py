"""Tests that reach Postgres are marked ``integration`` without saying so."""

from __future__ import annotations

import pytest

TESTS = """
def test_with_postgres(postgres_server):
    assert postgres_server.port

def test_through_another_fixture(clean_databases):
    assert clean_databases == {}

def test_pure():
    assert True
"""


@pytest.mark.parametrize(
    ("expression", "selected"),
    [("integration", 2), ("not integration", 1)],
    ids=["integration", "not integration"],
)
def test_postgres_tests_are_integration(
    pytester: pytest.Pytester, expression: str, selected: int
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--collect-only", "-q", "-m", expression)
    result.assert_outcomes()
    assert sum(".py::" in line for line in result.outlines) == selected
