"""fixtures/image_builds.py without Docker: sessions (pytester) whose build command is a
fake that prints scripts/images.py's events and counts its runs. Under xdist one process
builds, before the workers start; a failure fails the tests that need images, with its
tail; -q keeps one line per image."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 300

FAKE_BUILD = """
import json, sys

mode, runs = sys.argv[1], sys.argv[2]
with open(runs, "a") as counted:
    counted.write("run\\n")

def event(kind, text):
    print(json.dumps({"kind": kind, "text": text}), flush=True)

if mode == "crash":
    print("Traceback (most recent call last):\\nRuntimeError: the builder broke", flush=True)
    sys.exit(1)
event("note", "service images: building 1: kit/probe:0123 (no image)")
event("step", "kit/probe:0123: docker build")
event("detail", "kit/probe:0123: docker build: Step 1/9 : FROM x")
if mode == "fail":
    event("failure", "error: docker build of kit/probe:0123 failed:\\nno space left")
    sys.exit(1)
event("result", "built  kit/probe:0123    1.0s   10.0 MB")
"""

INNER_CONFTEST = """
import sys
sys.path.insert(0, {root!r})

import pytest

from fixtures.image_builds import PLUGIN_NAME, ImageBuilds, image_builds


def pytest_configure(config):
    command = [sys.executable, "fake_build.py", {mode!r}, "runs.txt"]
    config.pluginmanager.register(
        ImageBuilds(config, command, uses_docker=lambda config: True), PLUGIN_NAME
    )


@pytest.fixture(scope="session")
def harness_services(request):
    image_builds(request.config).require()
    return []
"""

INNER_TESTS = """
def test_one(harness_services):
    pass


def test_two(harness_services):
    pass


def test_without_images():
    pass
"""


def project(pytester: pytest.Pytester, mode: str) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    pytester.makeconftest(INNER_CONFTEST.format(root=str(ROOT), mode=mode))
    pytester.makepyfile(fake_build=FAKE_BUILD, test_inner=INNER_TESTS)
    return pytester


def runs(pytester: pytest.Pytester) -> int:
    counted = pytester.path / "runs.txt"
    return len(counted.read_text().splitlines()) if counted.exists() else 0


def index_of(lines: list[str], wanted: str) -> int:
    found = [n for n, line in enumerate(lines) if wanted in line]
    assert found, f"no line with {wanted!r} in:\n" + "\n".join(lines)
    return found[0]


def test_under_xdist_the_controller_builds_once_before_the_workers_start(
    pytester: pytest.Pytester,
) -> None:
    result = project(pytester, "ok").runpytest_subprocess(
        "-n", "2", "-p", "no:randomly", timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(passed=3)
    assert runs(pytester) == 1  # not once per worker
    lines = result.outlines
    started = index_of(lines, "service images: building 1: kit/probe:0123 (no image)")
    detail = index_of(lines, "docker build: Step 1/9 : FROM x")
    built = index_of(lines, "built  kit/probe:0123")
    workers = index_of(lines, "2 workers [3 items]")
    assert started < detail < built < workers


def test_a_failed_build_fails_the_tests_that_need_images_with_its_tail(
    pytester: pytest.Pytester,
) -> None:
    result = project(pytester, "fail").runpytest_subprocess(
        "-p", "no:randomly", timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(passed=1, errors=2)
    assert runs(pytester) == 1  # the second test is told the first outcome, not built again
    lines = result.outlines
    told = index_of(lines, "error: docker build of kit/probe:0123 failed:")
    assert lines[told + 1] == "no space left"
    assert told < index_of(lines, "test_inner.py")  # before any result
    # each test that needed the images says why it could not run
    assert "ImageBuildError: building the images failed" in result.stdout.str()
    assert sum(line.startswith("ERROR test_inner.py::test_") for line in lines) == 2


def test_a_crashed_builder_shows_its_last_lines(pytester: pytest.Pytester) -> None:
    result = project(pytester, "crash").runpytest_subprocess(
        "-q", "-p", "no:randomly", timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(passed=1, errors=2)
    # not events: with -q they are shown only as the failure's tail, before the results
    lines = result.outlines
    assert index_of(lines, "RuntimeError: the builder broke") < index_of(lines, "EE.")


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        (["-q"], ["built  kit/probe:0123    1.0s   10.0 MB"]),
        (
            [],
            [
                "service images: building 1: kit/probe:0123 (no image)",
                "kit/probe:0123: docker build",
                "kit/probe:0123: docker build: Step 1/9 : FROM x",
                "built  kit/probe:0123    1.0s   10.0 MB",
            ],
        ),
    ],
    ids=["quiet-one-line-per-image", "default-every-line"],
)
def test_what_is_shown_follows_the_verbosity(
    pytester: pytest.Pytester, options: list[str], shown: list[str]
) -> None:
    result = project(pytester, "ok").runpytest_subprocess(
        *options, "-p", "no:randomly", timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(passed=3)
    said = [line for line in result.outlines if "kit/probe" in line]
    assert said == shown


def test_nothing_is_built_when_no_collected_test_needs_images(pytester: pytest.Pytester) -> None:
    result = project(pytester, "ok").runpytest_subprocess(
        "-k", "without_images", timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(passed=1, deselected=2)
    assert runs(pytester) == 0
    assert not any("kit/probe" in line for line in result.outlines)
