"""Generate Python messages, gRPC stubs and type stubs from the protos in contracts/.

Each `contracts/<service>/v1/<service>.proto` is compiled into the service's own
package, `services/<service>/src/<service>/v1/`, so that the service's public
boundary can re-export its messages and client (the original's lib.rs). The kit's
own options (`contracts/kit/v1/options.proto`, which every contract imports) go to
`packages/servicekit/src/kit/v1/`: servicekit is in every service's closure, so the
top-level package `kit` is importable wherever a service's messages are. The
generated files are not checked in; run this after a clone and after every proto
change. `--check` regenerates into a scratch folder and fails when the files in
the tree differ (stale, edited by hand, or left over from a removed proto).

    python scripts/codegen.py           # write
    python scripts/codegen.py --check   # verify, exit 1 when stale
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
# Proto folders of contracts/ that are not a service, and the member that ships them.
SHARED_PROTOS = {"kit": Path("packages/servicekit")}


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def contracts(self) -> Path:
        return self.root / "contracts"

    def proto_files(self) -> list[Path]:
        """Every versioned proto under contracts/, e.g. contracts/dummy/v1/dummy.proto."""
        return sorted(self.contracts.glob("*/v*/*.proto"))

    def target_of(self, generated: Path, scratch_root: Path) -> Path:
        """Where a file generated under ``scratch_root`` belongs: its service's src/."""
        relative = generated.relative_to(scratch_root)
        top = relative.parts[0]
        member = SHARED_PROTOS.get(top, Path("services") / top)
        return self.root / member / "src" / relative


def generate(workspace: Workspace, out_root: Path) -> list[Path]:
    """Compile every proto into `out_root/<service>/v1/`; return the written files."""
    import grpc_tools  # imported here so --help works without the dev dependencies

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    protos = workspace.proto_files()
    if not protos:
        raise SystemExit(f"no protos found under {workspace.contracts}/<service>/v1/")
    out_root.mkdir(parents=True, exist_ok=True)
    # mypy-protobuf's plugins live next to this interpreter: name them, so that codegen
    # works when the environment's bin/ is not on PATH (e.g. .venv/bin/python codegen.py).
    bin_dir = Path(sys.executable).parent
    plugins = [
        f"--plugin=protoc-gen-{name}={bin_dir / f'protoc-gen-{name}'}"
        for name in ("mypy", "mypy_grpc")
        if (bin_dir / f"protoc-gen-{name}").exists()
    ]
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        *plugins,
        f"--proto_path={workspace.contracts}",
        f"--proto_path={well_known}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *[str(p.relative_to(workspace.contracts)) for p in protos],
    ]
    result = subprocess.run(
        command, cwd=workspace.contracts, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"protoc failed:\n{result.stderr}")
    written: list[Path] = []
    for proto in protos:
        package_dir = out_root / proto.parent.relative_to(workspace.contracts)
        init = package_dir / "__init__.py"
        init.write_text('"""Generated from contracts/ by scripts/codegen.py; do not edit."""\n')
        written.append(init)
        written.extend(p for p in package_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES))
    return written


def write(workspace: Workspace, *, quiet: bool) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scratch_root = Path(scratch)
        for generated in generate(workspace, scratch_root):
            target = workspace.target_of(generated, scratch_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(generated, target)
            if not quiet:
                print(f"generated {target.relative_to(workspace.root)}")


def check(workspace: Workspace) -> int:
    stale: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch_root = Path(scratch)
        expected = generate(workspace, scratch_root)
        expected_targets = {workspace.target_of(g, scratch_root) for g in expected}
        for generated in expected:
            target = workspace.target_of(generated, scratch_root)
            if not target.exists():
                stale.append(f"missing: {target.relative_to(workspace.root)}")
            elif not filecmp.cmp(generated, target, shallow=False):
                stale.append(f"differs: {target.relative_to(workspace.root)}")
        for package_dir in sorted({t.parent for t in expected_targets}):
            for existing in sorted(package_dir.glob("*")):
                if existing.name.endswith(GENERATED_SUFFIXES) and existing not in expected_targets:
                    stale.append(f"left over: {existing.relative_to(workspace.root)}")
    if stale:
        print("generated code is stale; run `python scripts/codegen.py`:", *stale, sep="\n  ")
        return 1
    print(f"generated code is up to date ({len(expected)} files)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when generated code is stale")
    parser.add_argument("--quiet", action="store_true", help="do not list the files written")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the workspace (default: this repository)",
    )
    args = parser.parse_args()
    workspace = Workspace(args.root.resolve())
    if args.check:
        return check(workspace)
    write(workspace, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
