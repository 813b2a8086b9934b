"""The docker backend refuses a service image built from other code than the checkout's,
instead of letting the tests pass or fail on old code."""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Iterator

import docker
import pytest
from docker.models.images import Image

from harness import SOURCE_DIGEST_LABEL, DockerBackendError, ServiceSpec
from harness.backends.containers import current_image, require_current_image, require_image
from harness.config import get_config

BUILT_FROM = "digest-of-the-code-the-image-holds"
LABELLED = {SOURCE_DIGEST_LABEL: BUILT_FROM, "org.example.other": "x"}


def spec(source_digest: str) -> ServiceSpec:
    return ServiceSpec(
        name="probe", grpc_port=50099, image="kit/probe:local", source_digest=source_digest
    )


@pytest.mark.parametrize(
    ("source_digest", "labels"),
    [
        (BUILT_FROM, LABELLED),
        ("digest-after-an-edit", {"org.example.other": "x"}),
        ("digest-after-an-edit", None),
        ("", LABELLED),
    ],
    ids=["same-code", "image-names-no-sources", "image-without-labels", "spec-names-no-sources"],
)
def test_an_image_is_taken_unless_both_name_their_sources_and_differ(
    source_digest: str, labels: dict[str, str] | None
) -> None:
    require_current_image(spec(source_digest), labels)


def test_an_image_of_other_code_is_refused_with_the_remedy() -> None:
    with pytest.raises(DockerBackendError) as refused:
        require_current_image(spec("digest-after-an-edit"), LABELLED)
    message = str(refused.value)
    assert "image kit/probe:local holds other code than this checkout's probe" in message
    assert "`kit-images build` in the project" in message
    assert "--harness-backend=process" in message


def test_the_remedy_names_the_projects_own_command() -> None:
    """harness_images_command (the kit sets `make images`) is what the remedy names."""
    with pytest.raises(DockerBackendError) as refused:
        require_current_image(spec("digest-after-an-edit"), LABELLED, "make images")
    assert "rebuild it (`make images` in the project)" in str(refused.value)
    assert "kit-images" not in str(refused.value)


@pytest.fixture
def labelled_image() -> Iterator[str]:
    """An empty image labelled as kit-images labels a service image."""
    client = docker.from_env()
    tag = f"kit/harness-probe:{uuid.uuid4().hex[:12]}"
    dockerfile = f'FROM scratch\nLABEL "{SOURCE_DIGEST_LABEL}"="{BUILT_FROM}"\n'
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        yield tag
    finally:
        client.images.remove(tag, force=True)
        client.close()


@pytest.mark.docker
@pytest.mark.integration
def test_the_label_is_read_from_the_image_on_the_engine(labelled_image: str) -> None:
    """What the backend does before it starts a service container: the image as Docker
    has it, then its labels."""
    client = docker.from_env()
    try:
        image = require_image(client, labelled_image, "build it")
    finally:
        client.close()
    require_current_image(spec(BUILT_FROM), image.labels)
    with pytest.raises(DockerBackendError, match="holds other code"):
        require_current_image(spec("digest-after-an-edit"), image.labels)


@pytest.mark.docker
@pytest.mark.integration
def test_another_checkouts_local_tag_gives_way_to_this_checkouts_content_tag() -> None:
    """Two checkouts share the engine: the other moved `<repo>:local` to its code; this
    one's stack runs the image of its own sources (its content tag) instead of refusing,
    and refuses as before when no image of its sources is there."""
    client = docker.from_env()
    repository = f"kit/harness-probe-{uuid.uuid4().hex[:8]}"

    def build(tag: str, built_from: str) -> Image:
        dockerfile = f'FROM scratch\nLABEL "{SOURCE_DIGEST_LABEL}"="{built_from}"\n'
        image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
        return image

    try:
        mine = build(f"{repository}:0123456789ab", "this-checkouts-code")
        theirs = build(f"{repository}:local", "the-other-checkouts-code")
        this_checkout = ServiceSpec(
            name="probe",
            grpc_port=50099,
            image=f"{repository}:local",
            source_digest="this-checkouts-code",
        )
        assert current_image(client, this_checkout, theirs, "make images").id == mine.id
        assert current_image(client, this_checkout, mine, "make images").id == mine.id
        edited = dataclasses.replace(this_checkout, source_digest="after-an-edit")
        with pytest.raises(DockerBackendError, match=r"holds other code.*`make images`"):
            current_image(client, edited, theirs, "make images")
    finally:
        for image in client.images.list(name=repository):
            client.images.remove(str(image.id), force=True)
        client.close()


@pytest.mark.parametrize(
    ("ini", "args", "expected"),
    [
        ("", [], "kit-images build"),
        ("harness_images_command = make images\n", [], "make images"),
        ("harness_images_command = make images\n", ["--harness-images-command=just x"], "just x"),
    ],
    ids=["default", "ini", "command line"],
)
def test_the_images_command_is_a_setting(
    pytester: pytest.Pytester, ini: str, args: list[str], expected: str
) -> None:
    pytester.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = session\n{ini}")
    config = pytester.parseconfigure(*args)
    assert get_config(config).images_command == expected
