"""Images for any project shaped as harness.workspace reads it: each service's Dockerfile
(``dockerfiles``), images tagged by content (``service_images``, requirements pinned by
``pins``), the local base images for a machine without a registry (``base_images``, the
Dockerfiles under ``base/``), and what they ask of Docker and uv (``engine``). The
command is ``kit-images`` (``python -m harness.images``, ``cli``); harness/README.md's
"Images" section says what an image must provide to the docker backend."""

from harness.images.cli import main

__all__ = ["main"]
