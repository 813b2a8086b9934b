"""What scripts/images.py says while it works: why it builds an image, that it waits for
another build, its plain and event output; and, on a Docker engine, a test session with
a stale image shows the build before the tests' results (fixtures/image_builds.py)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from harness import SOURCE_DIGEST_LABEL  # noqa: E402
from images import INPUTS_LABEL, uv_executable, why_build  # noqa: E402

IMAGES_PY = [sys.executable, str(ROOT / "scripts/images.py")]
RUN_TIMEOUT = 900  # a cold build of the probe image on a busy machine takes minutes


def labels(
    sources: dict[str, str] | None = None,
    *,
    requirements: str = "r1",
    base: str = "sha256:base1",
    dockerfile: str = "d1",
) -> dict[str, str]:
    files = sources if sources is not None else {"s/a.py": "1", "s/b.py": "2"}
    inputs = {
        "sources": files,
        "requirements": requirements,
        "base": base,
        "dockerfile": dockerfile,
    }
    return {SOURCE_DIGEST_LABEL: json.dumps(files), INPUTS_LABEL: json.dumps(inputs)}


MANY = {f"s/{n}.py": "1" for n in "abcdef"}


@pytest.mark.parametrize(
    ("previous", "current", "reasons"),
    [
        (None, labels(), ["no image"]),
        (labels(), labels({"s/a.py": "1", "s/b.py": "3"}), ["sources changed: s/b.py"]),
        (
            labels(),
            labels({"s/a.py": "9", "s/c.py": "1"}),
            ["sources changed: s/a.py, s/b.py (deleted), s/c.py (new)"],
        ),
        (
            labels(MANY),
            labels(dict.fromkeys(MANY, "2")),
            ["sources changed: s/a.py, s/b.py, s/c.py and 3 more"],
        ),
        (labels(), labels(requirements="r2"), ["dependencies changed"]),
        (labels(), labels(base="sha256:base2"), ["base image changed"]),
        (labels(), labels(dockerfile="d2"), ["Dockerfile changed"]),
        (
            labels(),
            labels({"s/a.py": "1"}, base="sha256:base2"),
            ["sources changed: s/b.py (deleted)", "base image changed"],
        ),
        ({SOURCE_DIGEST_LABEL: "old"}, labels(), ["inputs changed since the last build"]),
        ({}, labels(), ["inputs changed since the last build"]),
        (labels(), labels(), ["no image of this content"]),
    ],
    ids=[
        "no-image",
        "a-file-changed",
        "changed-deleted-new",
        "many-files-counted",
        "dependencies",
        "base",
        "dockerfile",
        "two-reasons",
        "image-without-recorded-inputs",
        "image-without-labels",
        "same-inputs-tag-removed",
    ],
)
def test_the_reason_for_a_build_names_what_changed(
    previous: dict[str, str] | None, current: dict[str, str], reasons: list[str]
) -> None:
    assert why_build(previous, current) == reasons


def images_py(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IMAGES_PY, *args], capture_output=True, text=True, check=False, timeout=timeout
    )


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        ("plain", "error: unknown services ['no-such-service']"),
        ("events", '{"kind": "failure", "text": "error: unknown services [\'no-such-service\']'),
    ],
)
def test_a_failure_is_told_in_the_chosen_form(progress: str, expected: str, tmp_path: Path) -> None:
    lock = tmp_path / "images.lock"
    result = images_py(
        "--progress", progress, "--lock-file", str(lock), "build", "no-such-service", timeout=120
    )
    assert result.returncode == 1
    assert expected in (result.stdout if progress == "events" else result.stderr)
    assert "\r" not in result.stdout + result.stderr  # no status line off a terminal


def test_a_second_build_waits_for_the_first_and_says_for_whom(tmp_path: Path) -> None:
    lock = tmp_path / "images.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 4242, the first build")
        held.flush()
        waiting = subprocess.Popen(
            [
                *IMAGES_PY, "--progress", "plain", "--lock-file", str(lock),
                "build", "no-such-service",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert waiting.stdout is not None
            first_line = waiting.stdout.readline()  # blocks until it says something
            assert first_line == "waiting for another image build (pid 4242, the first build)\n"
            time.sleep(0.5)
            assert waiting.poll() is None, "it must wait while the lock is held"
        except BaseException:
            waiting.kill()
            raise
        fcntl.flock(held, fcntl.LOCK_UN)
    stdout, stderr = waiting.communicate(timeout=120)
    assert "the other image build finished after" in stdout
    assert "unknown services ['no-such-service']" in stderr  # then it went on
    assert lock.read_text() == ""  # released: nobody named as holding it


# ---------------------------------------------------------------- a session, on Docker


PROBE_SOURCE = "services/probe/src/probe/__init__.py"

INNER_CONFTEST = """
import sys
sys.path.insert(0, {root!r})

import pytest

from fixtures.image_builds import PLUGIN_NAME, ImageBuilds, image_builds
from harness import BackendChoice, HarnessConfig, resolve_backend


def pytest_configure(config):
    def uses_docker(config):
        return resolve_backend(HarnessConfig.from_pytest(config).backend) is BackendChoice.DOCKER

    config.pluginmanager.register(
        ImageBuilds(config, {command!r}, uses_docker=uses_docker), PLUGIN_NAME
    )


@pytest.fixture(scope="session")
def harness_services(request):
    image_builds(request.config).require()
    return []
"""

INNER_TEST = """
import json
import subprocess
from pathlib import Path

from harness import SOURCE_DIGEST_LABEL, Workspace


def test_the_probe_image_holds_the_checkouts_code(harness_services):
    labels = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{{{json .Config.Labels}}}}", {image!r}],
        capture_output=True, text=True, check=True,
    ).stdout
    expected = Workspace.read(Path({workspace!r})).source_digest("probe")
    assert json.loads(labels)[SOURCE_DIGEST_LABEL] == expected


def test_without_images():
    pass
"""


@pytest.fixture
def probe_workspace(tmp_path: Path) -> Path:
    """A workspace of one tiny service, probe, with no third-party dependency."""
    root = tmp_path / "workspace"
    (root / "services/probe/src/probe").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "root"\nversion = "0"\nrequires-python = ">=3.11"\n'
        '[tool.uv.workspace]\nmembers = ["services/*"]\n'
    )
    (root / "services/probe/pyproject.toml").write_text(
        '[project]\nname = "probe"\nversion = "0"\nrequires-python = ">=3.11"\n'
        "dependencies = []\n[tool.kit.service]\ngrpc-port = 50099\n"
    )
    (root / PROBE_SOURCE).write_text('NAME = "probe"\n')
    for command in (
        [uv_executable(), "lock", "--offline", "--quiet"],
        [sys.executable, str(ROOT / "scripts/dockergen.py"), "--root", str(root)],
    ):
        subprocess.run(command, cwd=root, check=True, capture_output=True, timeout=120)
    return root


@pytest.fixture
def throwaway_repository() -> Iterator[str]:
    """An image repository of this test's own: every tag in it is removed afterwards, and
    only the tagged images: their parent layers stay the build cache of the next run
    (the same probe each time: nothing piles up), which a pruning rmi would empty."""
    repository = f"kit-selftest-{uuid.uuid4().hex[:8]}"
    yield repository
    tags = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", f"{repository}/probe"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if tags:
        subprocess.run(
            ["docker", "rmi", "--force", "--no-prune", *tags], capture_output=True, check=False
        )


def index_of(lines: list[str], wanted: str) -> int:
    found = [n for n, line in enumerate(lines) if wanted in line]
    assert found, f"no line with {wanted!r} in:\n" + "\n".join(lines)
    return found[0]


@pytest.mark.docker
@pytest.mark.integration
def test_a_session_shows_the_build_of_a_stale_image_before_the_results(
    pytester: pytest.Pytester, probe_workspace: Path, throwaway_repository: str
) -> None:
    build = [
        "build", "--auto-base", "--root", str(probe_workspace),
        "--repository", throwaway_repository,
    ]  # fmt: skip
    stale_image(f"{throwaway_repository}/probe:local", {PROBE_SOURCE: "an older content"})

    command = [*IMAGES_PY, "--progress", "events", *build]
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    pytester.makeconftest(INNER_CONFTEST.format(root=str(ROOT), command=command))
    pytester.makepyfile(
        test_probe=INNER_TEST.format(
            image=f"{throwaway_repository}/probe:local", workspace=str(probe_workspace)
        )
    )
    result = pytester.runpytest_subprocess(
        "--harness-backend=docker", "-p", "no:randomly", timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(passed=2)
    lines = result.outlines
    collected = index_of(lines, "collected 2 items")
    started = index_of(lines, f"service images: building 1: {throwaway_repository}/probe:")
    assert lines[started].endswith(
        f"(sources changed: {PROBE_SOURCE}, dependencies changed, "
        "base image changed, Dockerfile changed)"
    )
    step = index_of(lines, "docker build: Step ")
    built = index_of(lines, f"built  {throwaway_repository}/probe:")
    results = index_of(lines, "test_probe.py ..")
    assert collected < started < step < built < results
    assert "\r" not in result.stdout.str()

    # -q: one line per image (reused now), then the results
    quiet = pytester.runpytest_subprocess(
        "-q", "--harness-backend=docker", "-p", "no:randomly", timeout=RUN_TIMEOUT
    )
    quiet.assert_outcomes(passed=2)
    said = [line for line in quiet.outlines if throwaway_repository in line]
    assert len(said) == 1, quiet.outlines
    assert said[0].startswith("reused "), quiet.outlines
    assert not any("service images:" in line for line in quiet.outlines)

    # no test needs the images: nothing is built, nothing said
    unneeded = pytester.runpytest_subprocess(
        "--harness-backend=docker", "-k", "without_images", timeout=RUN_TIMEOUT
    )
    unneeded.assert_outcomes(passed=1, deselected=1)
    assert not any("service images" in line or "probe:" in line for line in unneeded.outlines)

    # plain lines off a terminal (a CI log): no status line rewritten in place
    plain = images_py("--progress", "auto", *build)  # stdout is a pipe here
    assert plain.returncode == 0, plain.stdout + plain.stderr
    *_, current, reused = plain.stdout.splitlines()
    assert current == "service images: all 1 current (probe)"
    assert reused.startswith(said[0].split("  ")[0])  # "reused <repository>/probe:<tag>"
    assert "\r" not in plain.stdout
    assert "\x1b" not in plain.stdout


def stale_image(tag: str, sources: dict[str, str]) -> None:
    """An empty image labelled as the build labels the image of ``sources``: what a
    probe image built before its last change looks like to the next build. (The build
    that follows is real; its layers are cached after this test's first run.)"""
    inputs = {"sources": sources, "requirements": "", "base": "", "dockerfile": ""}
    subprocess.run(
        [
            "docker", "build", "--quiet", "-t", tag,
            "--label", f"{SOURCE_DIGEST_LABEL}=an-older-digest",
            "--label", f"{INPUTS_LABEL}={json.dumps(inputs)}",
            "-",
        ],
        input="FROM scratch\nLABEL org.example.probe=stale\n",
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        capture_output=True, text=True, check=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
