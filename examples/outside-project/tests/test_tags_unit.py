"""A unit test: the tags service's spelling rule, no process, no database."""

from __future__ import annotations

import pytest

from servicekit.errors import InvalidArgument
from tags import normalize


def test_tags_are_trimmed_lower_cased_and_kept_once_in_order() -> None:
    assert normalize([" Python", "grpc", "PYTHON ", "Tests"]) == ["python", "grpc", "tests"]


def test_a_blank_tag_is_refused_by_its_position() -> None:
    with pytest.raises(InvalidArgument, match=r"tags\[1\]: must not be blank"):
        normalize(["ok", "  "])
