#!/usr/bin/env bash
# Build the beamlink Docker image with no network access inside the build: beamlink and its
# dependencies are turned into wheels on this machine (for the base image's Python version and
# platform), then installed in the image with `pip install --no-index`.
#
#   deploy/docker/build.sh [--base IMAGE] [--tag TAG]
#
# --base  base image (default python:3.11-slim; any Debian-based image with python3 >= 3.10 and
#         its venv module, e.g. one made by deploy/docker/build-base.sh)
# --tag   image to build (default beamlink/cluster_demo:latest)
set -euo pipefail

base=python:3.11-slim
tag=beamlink/cluster_demo:latest
while [[ $# -gt 0 ]]; do
    case $1 in
        --base) base=${2:?--base needs an image}; shift 2 ;;
        --tag) tag=${2:?--tag needs a name}; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
context=$(mktemp -d /tmp/beamlink-docker-context.XXXXXX)
trap 'rm -rf "$context"' EXIT

# Python version, glibc and machine of the base image decide which wheels fit it.
read -r pyver abi glibc machine < <(docker run --rm --entrypoint python3 "$base" -c '
import platform, sys
v = sys.version_info
print(f"{v[0]}.{v[1]}", f"cp{v[0]}{v[1]}", platform.libc_ver()[1] or "0", platform.machine())')
[[ $glibc != 0 ]] || { echo "base image $base has no glibc (musl images are not supported)" >&2; exit 1; }
platforms=(--platform "manylinux2014_$machine")
for ((minor = 17; minor <= ${glibc#2.}; minor++)); do
    platforms+=(--platform "manylinux_2_${minor}_$machine")
done

export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$context/wheelhouse"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$context/wheelhouse" "$root"
requirements=$(python3 - "$context/wheelhouse" <<'PY'
import sys, zipfile
from pathlib import Path
wheel = next(Path(sys.argv[1]).glob("beamlink-*.whl"))
with zipfile.ZipFile(wheel) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            print(line.split(":", 1)[1].strip())
PY
)
mapfile -t requirements <<<"$requirements"
python3 -m pip download --quiet --only-binary=:all: --dest "$context/wheelhouse" \
    --python-version "$pyver" --implementation cp --abi "$abi" --abi abi3 --abi none \
    "${platforms[@]}" "${requirements[@]}"

cp "$here/Dockerfile" "$here/healthcheck.sh" "$context/"
cp -r "$root/examples/cluster_demo" "$context/cluster_demo"
find "$context/cluster_demo" -name __pycache__ -prune -exec rm -rf {} +

previous=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
build_id=$(basename "$context")
docker build --build-arg "BASE_IMAGE=$base" --build-arg "BUILD_ID=$build_id" --tag "$tag" "$context"
# The build stage's image is dangling once tagged images are done; keep nothing of it, nor the
# image the tag named before (unless a container still uses it). Only this build's stage: a
# filter matching every build's stage removed a concurrent build's images under its feet.
docker image prune --force --filter "label=org.beamlink.build-stage=$build_id" >/dev/null
if [[ -n $previous && $previous != $(docker image inspect --format '{{.Id}}' "$tag") ]]; then
    docker image rm "$previous" >/dev/null 2>&1 || true
fi
echo "built $tag (base $base, Python $pyver)"
