#!/usr/bin/env bash
# Builds kube-apiserver and etcd from their Go modules (through the Go module
# proxy) into ${BREAKWATER_CACHE_DIR:-~/.cache/breakwater}/control-plane/<versions>/,
# once; later runs, and fresh clones on the same machine, reuse them (as
# setup-envtest keeps its binaries outside the project).
# Prints the folder holding both binaries (usable as KUBEBUILDER_ASSETS).
# Tests use KUBEBUILDER_ASSETS (or TEST_ASSET_KUBE_APISERVER / TEST_ASSET_ETCD)
# instead when a user already has these binaries.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
out="${BREAKWATER_CACHE_DIR:-$HOME/.cache/breakwater}/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
minor=${K8S_VERSION#*.}; minor=${minor%%.*}

# kube-apiserver: a main module requiring k8s.io/kubernetes, whose staging
# modules (k8s.io/api, k8s.io/apiserver, ...) are pinned from v0.0.0 to v0.<minor>.<patch>.
mkdir "$work/k8s" && cd "$work/k8s"
go mod init breakwater.dev/control-plane >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
for staging in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod"); do
  go mod edit -replace="$staging=$staging@v0.${K8S_VERSION#*.}"
done
go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > tools.go
go mod tidy >/dev/null 2>&1
pkg=k8s.io/component-base/version
go build -trimpath -o "$out/kube-apiserver" \
  -ldflags "-s -w -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  k8s.io/kubernetes/cmd/kube-apiserver

# etcd: its server module's main package.
mkdir "$work/etcd" && cd "$work/etcd"
go mod init breakwater.dev/etcd >/dev/null 2>&1
printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1
go mod tidy >/dev/null 2>&1
go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
echo "$out"
