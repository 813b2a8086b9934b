"""Generate Python messages, gRPC stubs and type stubs from the protos in contracts/.

Each `contracts/<service>/v1/<service>.proto` is compiled into the service's own
package, `services/<service>/src/<service>/v1/`, so that the service's public
boundary can re-export its messages and client (the original's lib.rs). The
generated files are not checked in; run this after a clone and after every proto
change. `--check` regenerates into a scratch folder and fails when the files in
the tree differ (stale or edited by hand).

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
SERVICES = ROOT / "services"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_files() -> list[Path]:
    """Every versioned proto under contracts/, e.g. contracts/dummy/v1/dummy.proto."""
    return sorted(CONTRACTS.glob("*/v*/*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Compile every proto into `out_root/<service>/v1/`; return the written files."""
    import grpc_tools  # imported here so --help works without the dev dependencies

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    protos = proto_files()
    if not protos:
        raise SystemExit(f"no protos found under {CONTRACTS}/<service>/v1/")
    out_root.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={CONTRACTS}",
        f"--proto_path={well_known}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *[str(p.relative_to(CONTRACTS)) for p in protos],
    ]
    result = subprocess.run(command, cwd=CONTRACTS, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"protoc failed:\n{result.stderr}")
    written: list[Path] = []
    for proto in protos:
        package_dir = out_root / proto.parent.relative_to(CONTRACTS)
        init = package_dir / "__init__.py"
        init.write_text('"""Generated from contracts/ by scripts/codegen.py; do not edit."""\n')
        written.append(init)
        written.extend(p for p in package_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES))
    return written


def destination(service: str) -> Path:
    return SERVICES / service / "src"


def target_of(generated: Path, scratch_root: Path) -> Path:
    """Where a file generated under ``scratch_root`` belongs in the tree."""
    relative = generated.relative_to(scratch_root)
    return destination(relative.parts[0]) / relative


def write(*, quiet: bool) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scratch_root = Path(scratch)
        for generated in generate(scratch_root):
            target = target_of(generated, scratch_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(generated, target)
            if not quiet:
                print(f"generated {target.relative_to(ROOT)}")


def check() -> int:
    stale: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch_root = Path(scratch)
        expected = generate(scratch_root)
        expected_targets = {target_of(g, scratch_root) for g in expected}
        for generated in expected:
            target = target_of(generated, scratch_root)
            if not target.exists():
                stale.append(f"missing: {target.relative_to(ROOT)}")
            elif not filecmp.cmp(generated, target, shallow=False):
                stale.append(f"differs: {target.relative_to(ROOT)}")
        for service_dir in sorted({t.parent for t in expected_targets}):
            for existing in sorted(service_dir.glob("*")):
                if existing.name.endswith(GENERATED_SUFFIXES) and existing not in expected_targets:
                    stale.append(f"left over: {existing.relative_to(ROOT)}")
    if stale:
        print("generated code is stale; run `python scripts/codegen.py`:", *stale, sep="\n  ")
        return 1
    print(f"generated code is up to date ({len(expected)} files)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when generated code is stale")
    parser.add_argument("--quiet", action="store_true", help="do not list the files written")
    args = parser.parse_args()
    if args.check:
        return check()
    write(quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
