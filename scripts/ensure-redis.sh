#!/usr/bin/env bash
# Makes sure redis-server (Debian's package) is installed, for the shared-cache
# tests, and prints its path. Installing needs root, as on the CI machine.
set -euo pipefail
if ! command -v redis-server >/dev/null; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
fi
command -v redis-server
