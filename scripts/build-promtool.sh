#!/usr/bin/env bash
# Builds Prometheus' promtool from its Go module (through the Go module proxy) into
# ${BREAKWATER_CACHE_DIR:-~/.cache/breakwater}/promtool/<version>/, once, and prints
# the binary's path. Used by the chart's alert-rule tests (`promtool test rules`).
set -euo pipefail
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-3.16.0}
source "$(dirname "$0")/lib/build-common.sh"
out="$cache_dir/promtool/$PROMETHEUS_VERSION"
if [ -x "$out/promtool" ]; then echo "$out/promtool"; exit 0; fi
take_build_lock
if [ ! -x "$out/promtool" ]; then
  mkdir -p "$out"
  # Prometheus 3.x is published as module versions v0.3xx.y (3.16.0 is v0.316.0).
  minor=${PROMETHEUS_VERSION#*.}; minor=${minor%%.*}; patch=${PROMETHEUS_VERSION##*.}
  GOBIN="$out" go install -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@v0.3$(printf %02d "$minor").$patch" >&2
fi
echo "$out/promtool"
