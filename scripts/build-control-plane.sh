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
source "$(dirname "$0")/lib/build-common.sh"
take_build_lock
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then echo "$out"; exit 0; fi # built while we waited
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_kubernetes_commands "$out" "$K8S_VERSION" kube-apiserver

# etcd: its server module's main package.
mkdir "$work/etcd" && cd "$work/etcd"
go mod init breakwater.dev/etcd >/dev/null 2>&1
printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1
go mod tidy >/dev/null 2>&1
go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
echo "$out"
