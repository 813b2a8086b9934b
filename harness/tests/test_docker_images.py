"""The docker backend refuses a service image built from other code than the checkout's,
instead of letting the tests pass or fail on old code."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import docker
import pytest

from harness.backends.docker import DockerBackendError, require_current_image
from harness.services import ServiceSpec
from harness.workspace import SOURCE_DIGEST_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.integration]

BUILT_FROM = "digest-of-the-code-the-image-holds"


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def build_image(client: docker.DockerClient, labels: dict[str, str]) -> str:
    """An empty image with ``labels``: all the check reads of an image."""
    tag = f"kit/harness-probe:{uuid.uuid4().hex[:12]}"
    lines = ["FROM scratch", *(f'LABEL "{key}"="{value}"' for key, value in labels.items())]
    client.images.build(fileobj=io.BytesIO("\n".join(lines).encode()), tag=tag, rm=True)
    return tag


@pytest.fixture(scope="module")
def labelled(client: docker.DockerClient) -> Iterator[str]:
    tag = build_image(client, {SOURCE_DIGEST_LABEL: BUILT_FROM})
    yield tag
    client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def unlabelled(client: docker.DockerClient) -> Iterator[str]:
    tag = build_image(client, {"org.example.other": "x"})
    yield tag
    client.images.remove(tag, force=True)


def spec(image: str, source_digest: str) -> ServiceSpec:
    return ServiceSpec(name="probe", grpc_port=50099, image=image, source_digest=source_digest)


def test_an_image_of_the_checkouts_code_is_taken(
    client: docker.DockerClient, labelled: str
) -> None:
    require_current_image(client, spec(labelled, BUILT_FROM))


def test_an_image_of_other_code_is_refused_with_the_remedy(
    client: docker.DockerClient, labelled: str
) -> None:
    with pytest.raises(DockerBackendError) as refused:
        require_current_image(client, spec(labelled, "digest-after-an-edit"))
    message = str(refused.value)
    assert f"image {labelled} holds other code than this checkout's probe" in message
    assert "python scripts/images.py build probe" in message
    assert "--harness-backend=process" in message


@pytest.mark.parametrize(
    ("image", "source_digest"),
    [("unlabelled", "digest-after-an-edit"), ("labelled", "")],
    ids=["image-names-no-sources", "spec-names-no-sources"],
)
def test_nothing_is_checked_unless_both_sides_name_their_sources(
    client: docker.DockerClient,
    request: pytest.FixtureRequest,
    image: str,
    source_digest: str,
) -> None:
    require_current_image(client, spec(request.getfixturevalue(image), source_digest))
