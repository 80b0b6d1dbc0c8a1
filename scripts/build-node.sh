#!/usr/bin/env bash
# Builds what a real single-node cluster needs beyond the API server and etcd
# (scripts/build-control-plane.sh), into
# ${BREAKWATER_CACHE_DIR:-~/.cache/breakwater}/node/<versions>/, once:
#   kubelet, kube-proxy, kube-controller-manager, kube-scheduler  (k8s.io/kubernetes)
#   containerd, containerd-shim-runc-v2, ctr                        (containerd v2)
#   coredns                                                         (github.com/coredns/coredns)
#   pause                                                           (Kubernetes' build/pause/linux/pause.c, static)
# runc, the CNI plugins, iptables, conntrack and buildah come from Debian
# (scripts/install-node-packages.sh). Prints the folder; the e2e harness uses
# BREAKWATER_NODE_ASSETS instead when it is set.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-1.37.2}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-2.4.2}
COREDNS_VERSION=${COREDNS_VERSION:-1.15.0}
source "$(dirname "$0")/lib/build-common.sh"
out="$cache_dir/node/k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION-coredns-$COREDNS_VERSION"
parts=(kubelet kube-proxy kube-controller-manager kube-scheduler containerd containerd-shim-runc-v2 ctr coredns pause)
complete() { for p in "${parts[@]}"; do [ -x "$out/$p" ] || return 1; done; }
if complete; then echo "$out"; exit 0; fi
take_build_lock
if complete; then echo "$out"; exit 0; fi
mkdir -p "$out"

build_kubernetes_commands "$out" "$K8S_VERSION" kubelet kube-proxy kube-controller-manager kube-scheduler >&2

for cmd in containerd containerd-shim-runc-v2 ctr; do
  GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" -tags "no_btrfs no_devmapper no_zfs no_aufs" \
    "github.com/containerd/containerd/v2/cmd/$cmd@v$CONTAINERD_VERSION" >&2
done

GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@v$COREDNS_VERSION" >&2

pause_c="$(go env GOMODCACHE)/k8s.io/kubernetes@v$K8S_VERSION/build/pause/linux/pause.c"
gcc -Os -static -o "$out/pause" -DVERSION="v$K8S_VERSION-breakwater" "$pause_c" >&2
strip "$out/pause"
echo "$out"
