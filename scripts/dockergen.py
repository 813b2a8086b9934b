"""Write each service's Dockerfile from the workspace's dependency graph (docker-gen).

The generator is the harness package's (harness.images.dockerfiles, the `kit-images
dockerfiles` command, which works on any project); this is it on the kit's workspace.

    python scripts/dockergen.py           # write services/<service>/Dockerfile
    python scripts/dockergen.py --check   # exit 1 when a Dockerfile is stale or hand-edited
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.images.cli import dockerfiles_command
from harness.images.dockerfiles import APP_UID, dockerfile

__all__ = ["APP_UID", "dockerfile"]

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a Dockerfile is stale")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the workspace (default: this repo)"
    )
    args = parser.parse_args()
    return dockerfiles_command(args.root, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
