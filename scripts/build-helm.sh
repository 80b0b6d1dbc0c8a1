#!/usr/bin/env bash
# Builds helm from its Go module (through the Go module proxy) into
# ${BREAKWATER_CACHE_DIR:-~/.cache/breakwater}/helm/<version>/, once, and prints
# the binary's path. Used by the chart tests for `helm lint` and `helm template`.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-3.22.0}
out="${BREAKWATER_CACHE_DIR:-$HOME/.cache/breakwater}/helm/$HELM_VERSION"
if [ -x "$out/helm" ]; then echo "$out/helm"; exit 0; fi
mkdir -p "$out"
GOBIN="$out" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" >&2
echo "$out/helm"
