#!/usr/bin/env bash
# Builds Jaeger v2 (github.com/jaegertracing/jaeger/cmd/jaeger, an OpenTelemetry
# Collector distribution with Jaeger's storage and query service) from its Go
# module, through the Go module proxy, into
# ${BREAKWATER_CACHE_DIR:-~/.cache/breakwater}/jaeger/<version>/, once, and prints
# the binary's path. Used by the tracing tests: the sidecar exports to its OTLP
# receivers, and the tests read the traces back through its query API.
set -euo pipefail
JAEGER_VERSION=${JAEGER_VERSION:-v1.75.0}
source "$(dirname "$0")/lib/build-common.sh"
out="$cache_dir/jaeger/$JAEGER_VERSION"
if [ -x "$out/jaeger" ]; then echo "$out/jaeger"; exit 0; fi
take_build_lock
if [ ! -x "$out/jaeger" ]; then
  mkdir -p "$out"
  dir=$(mktemp -d)
  (
    cd "$dir"
    go mod init breakwater.dev/jaeger >/dev/null 2>&1
    # A small module whose one tool is Jaeger, at the version pinned here (go.mod records it and its dependencies).
    go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" >&2
    go build -trimpath -ldflags "-s -w" -o "$out/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger >&2
  )
  rm -rf "$dir"
fi
echo "$out/jaeger"
