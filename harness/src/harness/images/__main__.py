"""``python -m harness.images``: the same as the ``kit-images`` command."""

import sys

from harness.images.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
