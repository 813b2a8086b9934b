"""Guard the contracts: `buf lint`, `buf breaking` against a baseline, and declared codes.

Three checks over the protos in contracts/, run by `make check`:

1. ``buf lint`` with the rules of buf.yaml.
2. ``buf breaking`` (buf.yaml's rules: what breaks the wire or the generated code, e.g. a
   field renumbered or retyped, an RPC removed, a field removed without reserving it)
   between the baseline and the working tree.
3. Declared status codes: an RPC that declares more codes in ``(kit.v1.may_return)`` than
   in the baseline, or drops the option, is flagged. buf has no rule for custom options;
   a consumer's error handling may not know the new code.

The baseline, in this order:

- ``--against REF``: the protos of that git revision;
- the merge base of HEAD with main (``origin/main``, else ``main``): what this branch
  changes. If the branch changed contracts/baseline/ (``--accept``), that is the
  baseline instead: the branch accepts a change the checks flag, in a diff reviewers see;
- contracts/baseline/ (the accepted contract, committed) where git has no such history:
  not a repository, a shallow clone (GitHub's checkout by default), no main branch.

    python scripts/protoguard.py            # check; exit 1 on any finding
    python scripts/protoguard.py --accept   # contracts/baseline/ := the protos as they are
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASELINE = Path("contracts/baseline")
MAIN_REFS = ("origin/main", "main")
MAY_RETURN = "kit.v1.may_return"
# FileDescriptorProto.service = 6, ServiceDescriptorProto.method = 2: a method's location path
SERVICE_FIELD, METHOD_FIELD = 6, 2


class GuardError(Exception):
    """The guard could not run (not a finding): the message says what to do."""


@dataclass(frozen=True)
class Baseline:
    protos: Path  # a folder laid out as contracts/ (user/v1/user.proto, ...)
    source: str  # what it is, for the report


# ---------------------------------------------------------------- buf


def find_buf() -> str:
    """buf from the buf-bin wheel next to this interpreter, else from PATH."""
    beside = Path(sys.executable).parent / "buf"
    if beside.exists():
        return str(beside)
    found = shutil.which("buf")
    if found is None:
        raise GuardError(
            f"buf not found beside {sys.executable} nor on PATH; it is the dev dependency "
            "buf-bin: run `make setup` (uv sync --locked) and use the project's environment"
        )
    return found


def run_buf(buf: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [buf, *args], cwd=root, capture_output=True, text=True, check=False, timeout=120
    )


def build_image(buf: str, root: Path, source: Path | str, out: Path) -> bytes:
    """The buf image (a FileDescriptorSet with imports and source info) of ``source``."""
    result = run_buf(buf, root, "build", str(source), "--output", str(out))
    if result.returncode != 0:
        raise GuardError(f"buf build {source} failed:\n{result.stderr.strip()}")
    return out.read_bytes()


# ---------------------------------------------------------------- git and the baseline


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=60
    )


def export_protos(root: Path, ref: str, into: Path) -> int:
    """Write the protos of contracts/ (not contracts/baseline/) at ``ref`` into ``into``."""
    listed = git(root, "ls-tree", "-r", "--name-only", ref, "--", "contracts")
    if listed.returncode != 0:
        raise GuardError(f"git cannot list contracts/ at {ref}: {listed.stderr.strip()}")
    count = 0
    for name in listed.stdout.splitlines():
        path = Path(name)
        if path.suffix != ".proto" or path.is_relative_to(BASELINE):
            continue
        shown = git(root, "show", f"{ref}:{name}")
        if shown.returncode != 0:
            raise GuardError(f"git cannot read {name} at {ref}: {shown.stderr.strip()}")
        target = into / path.relative_to("contracts")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(shown.stdout)
        count += 1
    return count


def main_merge_base(root: Path) -> tuple[str | None, str]:
    """(the merge base of HEAD with main, None when there is none; why)."""
    if git(root, "rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        return None, "not a git repository"
    if git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        return None, "a shallow clone, without the history to find the merge base in"
    for ref in MAIN_REFS:
        if git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
            continue
        base = git(root, "merge-base", "HEAD", ref)
        if base.returncode == 0:
            return base.stdout.strip(), f"the merge base with {ref}"
        return None, f"HEAD has no merge base with {ref}"
    return None, f"no main branch ({' or '.join(MAIN_REFS)})"


def baseline_changed_since(root: Path, commit: str) -> bool:
    """Whether contracts/baseline/ in the working tree differs from ``commit``'s."""
    changed = git(root, "diff", "--quiet", commit, "--", str(BASELINE)).returncode != 0
    untracked = git(root, "ls-files", "--others", "--exclude-standard", "--", str(BASELINE))
    return changed or bool(untracked.stdout.strip())


def choose_baseline(root: Path, against: str | None, scratch: Path) -> Baseline:
    committed = root / BASELINE
    if against is not None:
        export_protos(root, against, scratch)
        return Baseline(scratch, f"the protos at {against}")
    base, why = main_merge_base(root)
    if base is not None and not baseline_changed_since(root, base):
        export_protos(root, base, scratch)
        return Baseline(scratch, f"the protos at {base[:12]} ({why})")
    if base is not None:
        why = f"this branch changed {BASELINE}/ since {why} {base[:12]}, accepting a change"
    if not any(committed.rglob("*.proto")):
        raise GuardError(
            f"no baseline: {why}, and {BASELINE}/ holds no protos. Create it with "
            "`python scripts/protoguard.py --accept` on main and commit it"
        )
    shutil.copytree(committed, scratch, dirs_exist_ok=True)
    return Baseline(scratch, f"{BASELINE}/ ({why})")


def accept(root: Path) -> int:
    """Make contracts/baseline/ the protos as they are now."""
    target = root / BASELINE
    for old in target.rglob("*.proto"):
        old.unlink()
    count = 0
    for proto in sorted((root / "contracts").rglob("*.proto")):
        relative = proto.relative_to(root / "contracts")
        if proto.is_relative_to(target):
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(proto, target / relative)
        count += 1
    print(f"{BASELINE}/ now holds the {count} protos of contracts/; commit it with the change")
    return 0


# ---------------------------------------------------------------- declared codes


def declared_codes(image: bytes) -> dict[str, tuple[str, frozenset[str] | None]]:
    """Per RPC (``user.v1.UserService/GetUser``): where it is (file:line:column) and its
    declared codes (None without a ``(kit.v1.may_return)`` option), from a buf image."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files = descriptor_pb2.FileDescriptorSet.FromString(image)
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    # Any: types-protobuf types extensions by their generated module; this one is found
    # in a pool built from the image (the baseline's may differ from the generated code).
    extension: Any = None
    with contextlib.suppress(KeyError):  # no proto imports the kit's options
        extension = pool.FindExtensionByName(MAY_RETURN)
    # The image's own MethodOptions class, which knows the image's extension.
    options_class = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("google.protobuf.MethodOptions")
    )

    def codes_of(options: descriptor_pb2.MethodOptions) -> frozenset[str] | None:
        parsed = options_class.FromString(options.SerializeToString())
        if extension is None or not parsed.HasExtension(extension):
            return None
        names = extension.message_type.fields_by_name["codes"].enum_type.values_by_number
        return frozenset(names[n].name for n in parsed.Extensions[extension].codes)

    by_rpc: dict[str, tuple[str, frozenset[str] | None]] = {}
    for file in files.file:
        spans = {tuple(loc.path): loc.span for loc in file.source_code_info.location}
        for s, service in enumerate(file.service):
            for m, method in enumerate(service.method):
                line, column = spans.get((SERVICE_FIELD, s, METHOD_FIELD, m), [0, 0])[:2]
                rpc = f"{file.package}.{service.name}/{method.name}"
                by_rpc[rpc] = (f"{file.name}:{line + 1}:{column + 1}", codes_of(method.options))
    return by_rpc


def grown_codes(baseline: bytes, current: bytes) -> list[str]:
    """The RPCs whose declared codes grew since the baseline, as buf-style findings."""
    before = declared_codes(baseline)
    findings = []
    for rpc, (place, codes) in sorted(declared_codes(current).items()):
        if rpc not in before:
            continue  # a new RPC declares what it declares
        was = before[rpc][1]
        if was is None:
            continue  # it declared nothing: any list narrows what callers must handle
        where = f"contracts/{place}:RPC {rpc.replace('/', '.')}"
        listed = ", ".join(sorted(was))
        if codes is None:
            findings.append(
                f"{where} no longer has its ({MAY_RETURN}) option; it declared {listed}."
            )
        elif codes - was:
            added = ", ".join(sorted(codes - was))
            findings.append(
                f"{where} declares {added} in ({MAY_RETURN}), which it did not "
                f"(it declared {listed}): its consumers' error handling may not know it."
            )
    return findings


# ---------------------------------------------------------------- the checks


def check(root: Path, against: str | None) -> int:
    buf = find_buf()
    failed = False
    lint = run_buf(buf, root, "lint")
    if lint.returncode != 0:
        failed = True
        print("buf lint:", (lint.stdout + lint.stderr).strip(), sep="\n")
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        baseline = choose_baseline(root, against, scratch / "baseline")
        if not any(baseline.protos.rglob("*.proto")):
            print(f"no protos in {baseline.source}: nothing to compare with")
            return 1 if failed else 0
        before = build_image(buf, root, baseline.protos, scratch / "baseline.binpb")
        now = build_image(buf, root, ".", scratch / "current.binpb")
        breaking = run_buf(buf, root, "breaking", ".", "--against", str(scratch / "baseline.binpb"))
        findings = (breaking.stdout + breaking.stderr).strip().splitlines()
        findings += grown_codes(before, now)
    if findings:
        failed = True
        print(f"breaking changes against {baseline.source}:", *findings, sep="\n")
        print(
            "A deliberate break goes into a new version of the package (e.g. user.v2); a "
            "new status code, once its consumers handle it, is accepted with "
            "`python scripts/protoguard.py --accept` (contracts/baseline/ in the same change)."
        )
    if not failed:
        print(f"protos: buf lint clean; no breaking change against {baseline.source}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--against", metavar="REF", help="compare with this git revision")
    parser.add_argument(
        "--accept", action="store_true", help="write the protos as they are to contracts/baseline/"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the workspace, holding buf.yaml and contracts/ (default: this repository)",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.accept:
            return accept(root)
        return check(root, args.against)
    except GuardError as error:
        print(f"protoguard: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
