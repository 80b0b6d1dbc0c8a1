#!/usr/bin/env bash
# Installs the Debian packages a real single-node cluster and the image build
# need: runc, the CNI plugins, iptables, conntrack, and buildah (builds the
# Dockerfile without a Docker engine) with busybox-static (the shell of a base
# assembled locally). Needs root; does nothing when all are present.
set -euo pipefail
need=()
for p in runc containernetworking-plugins iptables conntrack buildah busybox-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
