#!/usr/bin/env bash
# Installs what the build needs on a fresh machine. build.sh calls it; it is idempotent and quiet
# when everything is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "ci/deps.sh: $1 is required but not installed" >&2; exit 1; }; }
need go
need git

# Go modules (from the module proxy), verified against go.sum.
go mod download
go mod verify >/dev/null
