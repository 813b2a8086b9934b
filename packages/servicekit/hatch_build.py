"""Build hook: servicekit's distributions carry the top-level package ``kit``, the kit's
proto options generated from ``contracts/kit/v1/options.proto``, and that .proto itself
(so an outside project's protos can ``import "kit/v1/options.proto"``, with the installed
site-packages on protoc's include path).

The generated modules are ignored by git. In a checkout where ``scripts/codegen.py`` ran,
and in the sdist, they are there and shipped as they are; in a checkout where it did not
(``pip install "git+...#subdirectory=packages/servicekit"``) they are generated here, from
the checkout's contracts/, with grpcio-tools (a build dependency only then).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PROTO = Path("kit/v1/options.proto")
GENERATED = ("options_pb2.py", "options_pb2_grpc.py")


class KitOptionsHook(BuildHookInterface):  # type: ignore[misc]  # hatchling: untyped here
    PLUGIN_NAME = "custom"

    def _source(self) -> Path:
        return Path(self.root) / "src"

    def _generated_missing(self) -> bool:
        return not all((self._source() / PROTO.parent / name).exists() for name in GENERATED)

    def _proto(self) -> Path:
        shipped = self._source() / PROTO  # in the sdist
        if shipped.exists():
            return shipped
        contracts = Path(self.root).parent.parent / "contracts" / PROTO  # in the checkout
        if contracts.exists():
            return contracts
        raise RuntimeError(
            f"servicekit: neither src/{PROTO} (an sdist) nor ../../contracts/{PROTO} (the "
            "kit's checkout) exists: build servicekit from the kit's repository or its sdist"
        )

    def dependencies(self) -> list[str]:
        # the generator of the lock, so the code needs the grpcio and protobuf servicekit requires
        return ["grpcio-tools>=1.85.1,<1.86"] if self._generated_missing() else []

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":  # the workspace's own install: src/ as it is
            return
        # where a file of src/kit goes in this target
        prefix = "src/" if self.target_name == "sdist" else ""
        proto = self._proto()
        build_data["force_include"][str(proto)] = f"{prefix}{PROTO}"
        if not self._generated_missing():
            return
        scratch = Path(tempfile.mkdtemp(prefix="servicekit-kit-"))
        include = proto.parents[2]  # the folder that holds kit/v1/options.proto
        result = subprocess.run(
            [
                sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={include}",
                f"--python_out={scratch}", f"--grpc_python_out={scratch}", str(PROTO),
            ],
            cwd=include, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"servicekit: protoc failed on {proto}:\n{result.stderr}")
        init = scratch / PROTO.parent / "__init__.py"
        init.write_text('"""Generated from contracts/kit/v1/options.proto; do not edit."""\n')
        for path in [init, *(scratch / PROTO.parent / name for name in GENERATED)]:
            build_data["force_include"][str(path)] = f"{prefix}{PROTO.parent / path.name}"
