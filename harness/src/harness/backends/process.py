"""The ``process`` backend: each service a local ``python -m <service>``, Postgres a local
server process (harness.postgres). No Docker needed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.postgres import PostgresServer
from harness.service_process import ServiceProcess
from harness.services import ServiceHandle, ServiceSpec

__all__ = ["ProcessBackend", "ProcessService"]


class ProcessService:
    """A service process that keeps its port across restarts, so that the services
    calling it (configured with its address) reach it again."""

    def __init__(
        self, spec: ServiceSpec, env: Mapping[str, str], log_path: Path, *, name: str = ""
    ) -> None:
        self.name = name or spec.name
        self._spec = spec
        self._env = dict(env)
        self._log_path = log_path
        self._port = 0
        self._process: ServiceProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def start(self) -> None:
        self.launch()
        self.wait_serving()

    def launch(self) -> None:
        self._process = ServiceProcess(
            name=self.name,
            module=self._spec.python_module,
            env={
                **self._env,
                self._spec.host_setting: "127.0.0.1",
                self._spec.port_setting: str(self._port),
            },
            log_path=self._log_path,
        )
        self._process.launch()

    def wait_serving(self) -> None:
        assert self._process is not None, "launch() first"
        self._process.wait_serving()
        assert self._process.port is not None
        self._port = self._process.port

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()

    def log_tail(self, lines: int = 50) -> str:
        return self._process.log_tail(lines) if self._process is not None else ""


class ProcessBackend:
    """Services as local processes on the session's local Postgres."""

    name = "process"
    # Where services reach what runs in the test process (mocks, the trace receiver).
    bind_host = "127.0.0.1"
    advertised_host = "127.0.0.1"

    def __init__(self, postgres: PostgresServer, log_dir: Path) -> None:
        self.postgres = postgres
        self._log_dir = log_dir
        self._services: list[ProcessService] = []

    def database_url(self, database: str, via: str | None = None) -> str:
        if via is None:
            return self.postgres.dsn(database)
        return f"postgresql://{self.postgres.user}@{via}/{database}"

    def service_address(self, spec: ServiceSpec, handle: ServiceHandle) -> str:
        """How a service reaches another: its loopback address (of several replicas, a
        gRPC target naming each: ``ipv4:127.0.0.1:p1,127.0.0.1:p2``)."""
        return handle.address

    def network(self) -> None:
        """Processes share the loopback: no network to make."""
        return None

    def launch_service(
        self, spec: ServiceSpec, env: Mapping[str, str], network: None = None, *, instance: str = ""
    ) -> ProcessService:
        """Start a service without waiting for it (``handle.wait_serving()``); each
        instance (replica) logs to ``<instance>.log``."""
        name = instance or spec.name
        handle = ProcessService(spec, env, self._log_dir / f"{name}.log", name=name)
        handle.launch()
        self._services.append(handle)
        return handle

    def close(self) -> None:
        for handle in reversed(self._services):
            handle.stop()
        self._services.clear()
