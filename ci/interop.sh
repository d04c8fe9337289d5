#!/usr/bin/env bash
# Interop surface: Microsoft's own managed-identity clients, unmodified, against the emulator
# (interop/, a test-only Go module).
#
#   ci/interop.sh build   vet the interop module (MSAL Go v1.10.1 comes from the module proxy)
#   ci/interop.sh test    build; install msal-node (npm, into build/interop/node) and MSAL Python
#                         (pip, into a venv in build/interop/python); run the interop tests:
#                         MSAL Go, msal-node and MSAL Python against `build/mtlspop emulator
#                         --source X` for every source (the tests build the CLI if it is missing)
#   ci/interop.sh bench   nothing (interop has no benchmark; it prints nothing)
#
# Nothing is installed globally. A client that cannot run here (no node, no python3 venv, no
# registry) is reported as SKIP with the reason, as are the cases it cannot support: Azure Arc
# needs root, because MSAL reads key files only from /var/opt/azcmagent/tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/build/interop"
step=${1:-}

log() { printf '\n--> interop: %s\n' "$*"; }
skip() { echo "ci/interop.sh: SKIP $*"; }

build() {
  log "go vet (interop module)"
  (cd interop && go vet ./...)
}

# install_node installs interop/package.json's exact versions (package-lock.json) into
# build/interop/node, unless they are there already. It prints why when it cannot.
install_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    skip "msal-node: node and npm are not installed"; return 1
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    skip "msal-node: @azure/msal-node 7 needs Node.js 20 or later (found $(node --version))"; return 1
  fi
  mkdir -p "$out/node"
  if cmp -s interop/package-lock.json "$out/node/package-lock.json" && [ -d "$out/node/node_modules/@azure/msal-node" ]; then
    return 0
  fi
  log "npm ci @azure/msal-node -> build/interop/node"
  cp interop/package.json interop/package-lock.json "$out/node/"
  if ! (cd "$out/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    rm -f "$out/node/package-lock.json"
    skip "msal-node: npm ci failed (is the npm registry reachable?)"; return 1
  fi
}

# install_python makes a venv in build/interop/python with interop/requirements.txt.
install_python() {
  local venv="$out/python/venv" stamp="$out/python/requirements.txt"
  if ! command -v python3 >/dev/null 2>&1; then
    skip "MSAL Python: python3 is not installed"; return 1
  fi
  if cmp -s interop/requirements.txt "$stamp" && [ -x "$venv/bin/python" ]; then
    return 0
  fi
  log "pip install msal -> build/interop/python/venv"
  rm -rf "$out/python"; mkdir -p "$out/python"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    skip "MSAL Python: python3 -m venv failed (Debian: apt-get install python3-venv)"; return 1
  fi
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -r interop/requirements.txt; then
    skip "MSAL Python: pip install failed (is PyPI reachable?)"; return 1
  fi
  cp interop/requirements.txt "$stamp"
}

run_tests() {
  local env=()
  if [ -x "$root/build/mtlspop" ]; then env+=("MTLSPOP_INTEROP_EMULATOR=$root/build/mtlspop"); fi
  if install_node; then env+=("MTLSPOP_INTEROP_NODE_MODULES=$out/node"); fi
  if install_python; then env+=("MTLSPOP_INTEROP_PYTHON=$out/python/venv/bin/python"); fi
  if [ "$(id -u)" -ne 0 ]; then
    skip "Azure Arc for every client: MSAL reads key files only from /var/opt/azcmagent/tokens, which needs root"
  fi
  log "go test (interop module: MSAL Go, msal-node, MSAL Python)"
  # -v so that every SKIP and its reason is printed; the per-test RUN lines are noise.
  (cd interop && env "${env[@]}" go test -count=1 -v ./... 2>&1) | grep -v -e '^=== RUN' -e '^=== PAUSE' -e '^=== CONT'
}

case "$step" in
  build) build ;;
  test) build; run_tests ;;
  bench) ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
