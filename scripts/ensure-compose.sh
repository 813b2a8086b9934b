#!/usr/bin/env bash
# Make `docker compose` (v2) available. Docker Compose v2 is a CLI plugin; Debian
# bookworm ships only the old docker-compose 1.29 (no `up --wait`), so when the plugin
# is missing it is taken from Debian's newer docker-compose package (a static binary),
# fetched with apt from the machine's own Debian mirror, and installed for this user
# in ~/.docker/cli-plugins. Nothing is downloaded from outside Debian's archive.
set -euo pipefail

if docker compose version >/dev/null 2>&1; then
  docker compose version
  exit 0
fi

suite="${COMPOSE_DEBIAN_SUITE:-trixie}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" \
  > "$work/sources.list"
apt_options=(
  -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_options[@]}" update -qq
(cd "$work" && apt-get "${apt_options[@]}" download docker-compose >/dev/null)
dpkg-deb -x "$work"/docker-compose_*.deb "$work/x"
plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
mkdir -p "$plugins"
install -m 0755 "$work/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugins/docker-compose"
docker compose version
