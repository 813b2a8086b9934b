#!/usr/bin/env bash
# Build the Debian base image (default tag kit/debian:bookworm) without any registry:
# debootstrap a minimal root filesystem from the apt mirror this machine already uses,
# then `docker import` it. Everything else (the Python runtime, Postgres) is built FROM it
# with ordinary Dockerfiles that install Debian packages.
#
#   harness/src/harness/images/base/debian/build.sh [TAG]
#
# Needs root and debootstrap (installed with apt-get when missing). The mirror is the
# first deb.debian.org-style URI of the machine's apt sources, overridable with
# DEBIAN_MIRROR; the suite is the machine's release (DEBIAN_SUITE, default bookworm).
set -euo pipefail

tag="${1:-kit/debian:bookworm}"
suite="${DEBIAN_SUITE:-bookworm}"

mirror_from_apt_sources() {
  # deb822 (.sources) first, then one-line sources.list entries
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
          | awk '{print $2}' | grep -v security | head -n 1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}' | grep -v security | head -n 1 || true)
  fi
  echo "$uri"
}

mirror="${DEBIAN_MIRROR:-$(mirror_from_apt_sources)}"
if [ -z "$mirror" ]; then
  echo "no Debian mirror found in /etc/apt/sources*; set DEBIAN_MIRROR=http://..." >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "debootstrap needs root: run this as root (or with sudo)" >&2
  exit 1
fi
# Wait for another apt (a user's, CI installing something else in parallel) instead of
# failing at once on its lock. DPkg::Lock::Timeout covers dpkg's lock (install), not the
# lists lock of `apt-get update` (apt 2.6 fails at once there), so both steps also run
# under a flock on the dpkg directory, which .ci/run's background apt-get (chromium)
# takes too (apt's own locks are fcntl locks, apart from it).
if ! command -v debootstrap >/dev/null 2>&1; then
  flock -w 600 /var/lib/dpkg sh -c 'apt-get -o DPkg::Lock::Timeout=600 update -qq \
    && apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null'
fi

rootfs=$(mktemp -d /tmp/kit-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "debootstrap $suite from $mirror"
# Its output as it goes (I: Retrieving..., I: Unpacking...): kit-images base shows the
# latest line as the step in progress, and the last ones when it fails.
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" 2>&1

# What an image does not need: package caches, docs, man pages, translations.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
# The same mirror inside the image, so Dockerfiles built FROM it can apt-get install.
printf 'deb %s %s main\n' "$mirror" "$suite" > "$rootfs/etc/apt/sources.list"
rm -f "$rootfs"/etc/apt/sources.list.d/*
# Keep images small: no recommends, no docs, as the official slim images do.
cat > "$rootfs/etc/apt/apt.conf.d/90kit" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
CONF
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/90kit" <<'CONF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
CONF

echo "docker import $tag"
tar -C "$rootfs" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'CMD ["bash"]' \
  - "$tag" >/dev/null
echo "built $tag"
