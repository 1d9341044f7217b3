#!/usr/bin/env bash
# Build a Debian base image without any image registry: debootstrap a minimal root file system from
# the machine's Debian mirror and `docker import` it. Used where no registry is reachable (the test
# machines); with a registry, use an official image (python:3.11-slim) instead.
#
#   deploy/docker/build-base.sh TAG [PACKAGES] [SUITE]
#
# TAG       image to create, e.g. beamlink-base/python:bookworm
# PACKAGES  comma-separated packages for debootstrap --include (default: python3,python3-venv)
# SUITE     Debian release (default: bookworm)
#
# An existing TAG is kept (set BEAMLINK_REBUILD_BASE=1 to rebuild). DEBIAN_MIRROR overrides the
# mirror read from /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list.
set -euo pipefail

tag=${1:?usage: build-base.sh TAG [PACKAGES] [SUITE]}
packages=${2:-python3,python3-venv}
suite=${3:-bookworm}

lock="/tmp/beamlink-base-${tag//[^A-Za-z0-9_.-]/_}.lock"
exec 9>"$lock"
flock 9

if [[ ${BEAMLINK_REBUILD_BASE:-0} != 1 ]] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag exists"
    exit 0
fi

mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
fi
if [[ -z $mirror && -f /etc/apt/sources.list ]]; then
    mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' /etc/apt/sources.list | head -n1)
fi
mirror=${mirror:-http://deb.debian.org/debian}

rootfs=$(mktemp -d /tmp/beamlink-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "debootstrap $suite ($packages) from $mirror"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    exit 1
}
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    - "$tag" >/dev/null
echo "built base image $tag"
