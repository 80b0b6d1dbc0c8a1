#!/usr/bin/env bash
# Installs what the benchmark compares against and drives load with:
# nginx (Debian), vegeta (Go module proxy), the Portkey gateway (npm),
# and bench/streams (the model server and stream workload, built with Go).
# Everything lands in git-ignored .cache/ or the system package set.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
mkdir -p .cache/bin .cache/peers
(cd bench/streams && go build -o ../../.cache/bin/streams .)
[ -x .cache/bin/vegeta ] || GOBIN="$PWD/.cache/bin" go install github.com/tsenart/vegeta/v12@v12.13.0
if [ ! -f .cache/peers/node_modules/@portkey-ai/gateway/build/start-server.js ]; then
  (cd .cache/peers && echo '{"private":true}' > package.json && npm install --no-audit --no-fund --silent @portkey-ai/gateway@1.15.2)
fi
