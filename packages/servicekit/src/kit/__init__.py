"""The kit's own proto options (``kit.v1``), generated from ``contracts/kit/v1/`` by
scripts/codegen.py into ``kit/v1/``; shipped with servicekit, which every service has."""
