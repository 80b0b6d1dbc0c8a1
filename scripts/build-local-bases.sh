#!/usr/bin/env bash
# Assembles the Dockerfile's two bases on this machine, for where no public
# registry is reachable: Node 24 (the npm package `node`, in node_modules) with
# the shared libraries it links, laid out as the distroless base is
# (/nodejs/bin/node, user nonroot 65532); the build base adds busybox's shell,
# npm and the machine's CA bundle (npm ci runs inside the build).
# Usage: build-local-bases.sh BUILDAH_ARGS... ; prints "BUILD_BASE RUNTIME_BASE".
set -euo pipefail
cd "$(dirname "$0")/.."
node=$(readlink -f node_modules/node/bin/node)
version=$("$node" -v)
buildah=(buildah "$@")
build_tag="localhost/breakwater-base/node-build:${version#v}"
runtime_tag="localhost/breakwater-base/node-runtime:${version#v}"
if "${buildah[@]}" inspect --type image "$build_tag" >/dev/null 2>&1 && "${buildah[@]}" inspect --type image "$runtime_tag" >/dev/null 2>&1; then
  echo "$build_tag $runtime_tag"; exit 0
fi

# Node, its libraries, a passwd with nonroot, CA certificates and /tmp, under the root $1.
lay_out_node() {
  local root=$1
  mkdir -p "$root/nodejs/bin" "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
  cp "$node" "$root/nodejs/bin/node"
  for lib in $(ldd "$node" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'); do
    cp -L --parents "$lib" "$root"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
}

runtime=$("${buildah[@]}" from scratch)
lay_out_node "$("${buildah[@]}" mount "$runtime")"
"${buildah[@]}" config --user 65532:65532 --env PATH=/nodejs/bin "$runtime"
"${buildah[@]}" commit -q "$runtime" "$runtime_tag" >/dev/null
"${buildah[@]}" rm "$runtime" >/dev/null

build=$("${buildah[@]}" from scratch)
root=$("${buildah[@]}" mount "$build")
lay_out_node "$root"
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/usr/local/bin" "$root/usr/local/lib/node_modules"
cp /bin/busybox "$root/bin/busybox"
chroot "$root" /bin/busybox --install -s
# npm's own package, found from its executable: `npm root -g` follows the node first on PATH, which under
# `npm run` is the project's Node 24 (node_modules/.bin), whose prefix holds no npm.
npm_package=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
cp -r "$npm_package" "$root/usr/local/lib/node_modules/npm"
ln -s /nodejs/bin/node "$root/usr/local/bin/node"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
"${buildah[@]}" config --env PATH=/usr/local/bin:/nodejs/bin:/bin:/usr/bin --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt "$build"
"${buildah[@]}" commit -q "$build" "$build_tag" >/dev/null
"${buildah[@]}" rm "$build" >/dev/null
echo "$build_tag $runtime_tag"
