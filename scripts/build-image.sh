#!/usr/bin/env bash
# Builds the image from ./Dockerfile with Debian's buildah (no Docker engine
# runs here) and writes it as a docker-archive, which `ctr images import`
# takes. BASES=public (default) builds on the Dockerfile's own public bases;
# BASES=local on bases assembled on this machine (scripts/build-local-bases.sh).
# Storage lives in the cache, not in /var/lib/containers; a build leaves
# nothing there but the local bases it reuses: the archive is the product, so
# the built image, the images earlier builds left untagged and any working
# container are removed.
# Usage: build-image.sh TAG OUT.tar ; prints the archive's size in bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=$1 archive=$2
source scripts/lib/build-common.sh
bash scripts/install-node-packages.sh
buildah=(--storage-driver vfs --root "$cache_dir/buildah/storage" --runroot "$cache_dir/buildah/run")
args=()
if [ "${BASES:-public}" = local ]; then
  read -r build_base runtime_base < <(bash scripts/build-local-bases.sh "${buildah[@]}")
  args=(--build-arg "BUILD_BASE=$build_base" --build-arg "RUNTIME_BASE=$runtime_base")
fi
buildah "${buildah[@]}" bud --isolation chroot --layers=false -q "${args[@]}" -t "$tag" -f Dockerfile . >&2
rm -f "$archive"
buildah "${buildah[@]}" push -q "$tag" "docker-archive:$archive:$tag" >&2
buildah "${buildah[@]}" rm --all >/dev/null
buildah "${buildah[@]}" rmi -f "$tag" >/dev/null
buildah "${buildah[@]}" rmi --prune >/dev/null 2>&1 || true
stat -c %s "$archive"
