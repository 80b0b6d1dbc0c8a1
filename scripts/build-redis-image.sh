#!/usr/bin/env bash
# Builds a small Redis image for the real-cluster e2e from Debian's
# redis-server (scripts/ensure-redis.sh), laid out as the local Node bases are
# (scripts/build-local-bases.sh): the binary and the shared libraries it links
# on scratch, user nonroot 65532, no shell. Written as a docker-archive, which
# `ctr images import` takes; the image is removed from the build storage after.
# Usage: build-redis-image.sh TAG OUT.tar ; prints the archive's size in bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=$1 archive=$2
source scripts/lib/build-common.sh
take_build_lock
redis=$(readlink -f "$(bash scripts/ensure-redis.sh)")
buildah=(buildah --storage-driver vfs --root "$cache_dir/buildah/storage" --runroot "$cache_dir/buildah/run")
image=$("${buildah[@]}" from scratch)
trap '"${buildah[@]}" rm "$image" >/dev/null 2>&1 || true' EXIT
root=$("${buildah[@]}" mount "$image")
mkdir -p "$root/usr/bin" "$root/etc" "$root/data" "$root/tmp"
cp "$redis" "$root/usr/bin/redis-server"
for lib in $(ldd "$redis" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'); do
  cp -L --parents "$lib" "$root"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/data:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
chown 65532:65532 "$root/data"
chmod 1777 "$root/tmp"
"${buildah[@]}" config --user 65532:65532 --workingdir /data --port 6379 \
  --entrypoint '["/usr/bin/redis-server"]' --cmd '["--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]' "$image"
"${buildah[@]}" commit -q "$image" "$tag" >/dev/null
rm -f "$archive"
"${buildah[@]}" push -q "$tag" "docker-archive:$archive:$tag" >&2
"${buildah[@]}" rmi -f "$tag" >/dev/null
stat -c %s "$archive"
