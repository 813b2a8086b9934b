"""Which fault links a stack accepts, and how the marker asks for them: no network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from harness import ServiceSpec, StackError, StackRequest
from harness.faults.links import check_links
from harness.stacks.marker import stack_marker, stack_request

SPECS = {
    "user": ServiceSpec("user", grpc_port=50052, database="user"),
    "dummy": ServiceSpec(
        "dummy", grpc_port=50053, database="dummy", calls={"user": "DUMMY_USER_ADDRESS"}
    ),
    "gateway": ServiceSpec("gateway", http_port=8080, calls={"dummy": "GATEWAY_DUMMY_ADDRESS"}),
}
BOOTED = ["user", "dummy", "gateway"]


@pytest.mark.parametrize(
    "links",
    [
        pytest.param([], id="none"),
        pytest.param([("dummy", "user")], id="service-to-service"),
        pytest.param([("user", "postgres"), ("dummy", "postgres")], id="service-to-database"),
        pytest.param([["gateway", "dummy"], ("dummy", "user")], id="lists-as-pairs"),
    ],
)
def test_links_along_calls_and_to_databases_are_accepted(links: list[Any]) -> None:
    check_links(SPECS, BOOTED, links)


@pytest.mark.parametrize(
    ("links", "booted", "problem"),
    [
        pytest.param(
            [("user", "dummy")],
            BOOTED,
            "user -> dummy: user does not call 'dummy' (it calls nothing, and has a "
            "database: 'postgres')",
            id="not-a-call",
        ),
        pytest.param(
            [("gateway", "postgres")],
            BOOTED,
            "gateway -> postgres: gateway has no database",
            id="no-database",
        ),
        pytest.param(
            [("user", "postgres")],
            ["dummy"],
            "user -> postgres: 'user' is not a service this stack boots (it boots ['dummy']; "
            "a mock calls nothing)",
            id="caller-mocked-or-absent",
        ),
        pytest.param(
            [("dummy", "user"), ("dummy", "user")],
            BOOTED,
            "asked for more than once: dummy -> user",
            id="twice",
        ),
        pytest.param(
            [("dummy",)],
            BOOTED,
            "('dummy',) is not a pair (caller, callee) of service names",
            id="not-a-pair",
        ),
    ],
)
def test_links_that_cannot_be_made_are_refused_by_name(
    links: list[Any], booted: list[str], problem: str
) -> None:
    with pytest.raises(StackError, match="links that cannot be made") as refused:
        check_links(SPECS, booted, links)
    assert problem in str(refused.value)


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        pytest.param(("dummy",), {}, StackRequest(("dummy",)), id="services"),
        pytest.param(
            ("dummy",),
            {"mocks": ["user"], "links": [["dummy", "user"]]},
            StackRequest(("dummy",), ("user",), (("dummy", "user"),)),
            id="mocks-and-links",
        ),
    ],
)
def test_the_marker_arguments_become_a_request(
    args: tuple[str, ...], kwargs: dict[str, Any], expected: StackRequest
) -> None:
    assert stack_marker(*args, **kwargs) == expected


def test_links_are_part_of_what_makes_two_requests_the_same_stack() -> None:
    plain = StackRequest(("dummy",))
    linked = StackRequest(("dummy",), links=(("dummy", "user"),))
    assert plain.key != linked.key
    assert linked.key == StackRequest(("dummy",), links=(("dummy", "user"),)).key


@dataclass
class MarkedTest:
    """The little of a pytest item that stack_request reads."""

    marker: pytest.Mark
    nodeid: str = "test_x.py::test_x"

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return self.marker if name == "stack" else None


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        pytest.param(pytest.mark.stack("dummy", link=[("dummy", "user")]), "'link'", id="typo"),
        pytest.param(pytest.mark.stack("dummy", links=[7]), "not iterable", id="not-pairs"),
        pytest.param(pytest.mark.stack("dummy", replica={"user": 2}), "'replica'", id="typo-2"),
    ],
)
def test_a_marker_with_arguments_it_does_not_take_is_refused(
    marker: pytest.MarkDecorator, problem: str
) -> None:
    with pytest.raises(StackError, match="takes services, mocks=, links= and replicas=") as refused:
        stack_request(cast("pytest.Item", MarkedTest(marker.mark)))
    assert problem in str(refused.value)
