"""Where a stack's services run: as local processes (``process``) or in containers
(``docker``), behind one protocol (:class:`Backend`) and opened by :func:`open_backend`.

The modules: ``base`` (the protocol), ``choice`` (which backend, the host names of the
test process's servers, :func:`open_backend`), ``process`` (the process backend),
``docker`` (the docker backend's services), ``docker_postgres`` (its Postgres container),
``containers`` (what it asks of Docker: labels, reaping, images, ports), ``subnets``
(the stacks' networks, each on a /24 of the harness's own range).
"""

from __future__ import annotations

from harness.backends.base import Backend
from harness.backends.choice import (
    HarnessHost,
    default_postgres_image,
    docker_unavailable,
    harness_host_for,
    open_backend,
    resolve_backend,
)

__all__ = [
    "Backend",
    "HarnessHost",
    "default_postgres_image",
    "docker_unavailable",
    "harness_host_for",
    "open_backend",
    "resolve_backend",
]
