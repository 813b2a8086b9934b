#!/usr/bin/env bash
# This project's tests as an outsider runs them, on the kit's distributions: build the
# harness and servicekit wheels from the kit's checkout (../..), install them into a clean
# environment (uv venv) with this project and its own dependencies, generate the code
# from proto/, and run pytest there. .ci/run runs it on both backends.
#
#   examples/outside-project/run-tests.sh [--docker] [pytest args...]
#
# The process backend always; with --docker the docker backend after it, on this
# project's images built by the installed package's command (`kit-images build
# --auto-base`: the public python:3.11-slim when present, else the local base images,
# built when missing; the versions of the environment, the servicekit wheel from dist/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kit="$(cd "$here/../.." && pwd)"
uv="${UV:-$(command -v uv || echo "$kit/.tools/bin/uv")}"
export UV="$uv"  # kit-images exports requirements and fetches wheels with it
backends=(process)
if [ "${1:-}" = "--docker" ]; then backends+=(docker); shift; fi
export UV_PYTHON_DOWNLOADS=never

work="$here/build"
dist="$work/dist"
venv="$work/venv"
mkdir -p "$work"
rm -rf "$dist"
echo "--- wheels of the kit's distributions"
"$uv" build --quiet --package servicekit --out-dir "$dist" --directory "$kit"
"$uv" build --quiet --package harness --out-dir "$dist" --directory "$kit"
ls "$dist"

echo "--- a clean environment: the wheels, this project and its own dependencies"
rm -rf "$venv"
"$uv" venv --quiet --python 3.11 "$venv"
# outside the kit's workspace: uv must not take the kit's pyproject or lock for this one
VIRTUAL_ENV="$venv" "$uv" pip install --quiet --no-config \
  "$dist"/servicekit-*.whl "$dist"/harness-*.whl --editable "$here[test]"

cd "$here"
"$venv/bin/python" codegen.py
"$venv/bin/kit-images" dockerfiles --check
for backend in "${backends[@]}"; do
  if [ "$backend" = docker ]; then
    echo "--- this project's images (kit-images, from the harness wheel)"
    "$venv/bin/kit-images" build --auto-base
  fi
  echo "--- pytest on the $backend backend"
  "$venv/bin/python" -m pytest --harness-backend="$backend" "$@"
done
