# The commands a newcomer needs; each one sets up what it depends on.
#   make dev     start the whole backend locally (embedded Postgres, no Docker); its data is
#                throwaway and NOT crash-safe: DURABLE=1 keeps it (crash-safe) in .dev/postgres,
#                DATA_DIR=<dir> in <dir>; the traces of your requests on http://127.0.0.1:8090/
#   make test    run the whole test suite
#   make check   lint, format check, strict types, generated code, Dockerfiles and Kubernetes
#                manifests fresh (the manifests also validated against the Kubernetes schemas),
#                the protos: buf lint, no breaking change against main (scripts/protoguard.py)
#   make new-service NAME=orders
#                a new gRPC service from the template, wired in everywhere (scripts/new_service.py)
#   make images  container images (local base images when no registry, Traefik), for compose.yaml
.PHONY: setup generate dev test check images up down new-service

export UV_PYTHON_DOWNLOADS := never
# Bytecode, compiled once and kept: the tests start hundreds of Python processes
# (services, pytester runs) and each one would otherwise compile every module it imports
# from source again, pytest's assertion rewriting included (measured: a process-heavy
# test file 63 s -> 24 s, its CPU 33 s -> 13 s). The dependencies are compiled by
# `uv sync --compile-bytecode`; the kit's own modules as they are first imported, which
# PYTHONDONTWRITEBYTECODE (set on some machines and CI images) would forbid.
unexport PYTHONDONTWRITEBYTECODE
# uv from PATH, or installed from PyPI into .tools/ (no root, no global change) when missing.
UV := $(shell command -v uv 2>/dev/null || echo "$(CURDIR)/.tools/bin/uv")

$(UV):
	python3 -m pip install --quiet --disable-pip-version-check --target "$(CURDIR)/.tools" uv

setup: $(UV)
	$(UV) sync --locked --compile-bytecode
	$(UV) run python scripts/codegen.py --quiet

generate: setup

dev: setup
	$(UV) run python scripts/dev.py $(if $(filter-out 0 no false,$(DURABLE)),--durable) $(if $(DATA_DIR),--data-dir "$(DATA_DIR)")

# With a Docker engine the stacks run in containers: conftest.py builds the images that
# changed when the session starts (harness_services), so no image step is needed here.
# The tests run in parallel worker processes, one per core (pytest-xdist; each worker has
# its own Postgres and stacks); TEST_WORKERS=0 runs them all in one process.
TEST_WORKERS ?= auto
test: setup
	$(UV) run pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Container images: the local base images when the public ones are not on this
# machine (no registry needed), then every service image that changed, and Traefik.
images: setup
	scripts/ensure-compose.sh
	$(UV) run python scripts/images.py build --auto-base
	$(UV) run python scripts/images.py traefik

check: setup
	$(UV) run python scripts/codegen.py --check
	$(UV) run python scripts/dockergen.py --check
	$(UV) run python scripts/kubegen.py --check
	$(UV) run python scripts/protoguard.py
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy .

# A new gRPC service from the template (scripts/new_service.py): proto, contract suite,
# package, migration, Dockerfile, compose entry, .env.example, workspace and manifests.
new-service: setup
	@test -n "$(NAME)" || { echo "usage: make new-service NAME=<name>" >&2; exit 2; }
	$(UV) run python scripts/new_service.py "$(NAME)"
