#!/usr/bin/env bash
# libmtlspop build entry point.
#
#   ./build.sh          build everything into build/
#   ./build.sh test     build, then run every check and test of every surface
#   ./build.sh demo     build, then run the mTLS PoP demo against the built-in emulator
#   ./build.sh bench    build, then run the benchmarks and write build/bench/results.json
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
out="$root/build"

log() { printf '\n==> %s\n' "$*"; }

deps() {
  log "dependencies (ci/deps.sh)"
  ./ci/deps.sh
}

# Each surface beyond the Go core has a script in ci/ with "build", "test" and "bench" steps.
# Every one exists: a missing or non-executable script is an error, never a skip, so that a run
# cannot report all tests passed without running a surface's.
surfaces=(capi tpm python node interop)

need_script() { # need_script NAME STEP
  if [ ! -x "ci/$1.sh" ]; then
    echo "build.sh: ci/$1.sh is missing or not executable: cannot $2 the $1 surface" >&2
    exit 1
  fi
}

surface() {
  local name=$1 step=$2
  need_script "$name" "$step"
  log "$name: $step (ci/$name.sh)"
  "./ci/$name.sh" "$step"
}

build() {
  deps
  log "go build -> build/mtlspop"
  mkdir -p "$out"
  go build -trimpath -o "$out/mtlspop" ./cmd/mtlspop
  for s in "${surfaces[@]}"; do surface "$s" build; done
}

check_format() {
  log "gofmt"
  local unformatted
  unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go'))
  if [ -n "$unformatted" ]; then
    echo "gofmt would change:"; echo "$unformatted"; return 1
  fi
}

test_go() {
  log "go vet"
  go vet ./...
  (cd bench && go vet ./...)
  log "go test -race"
  go test -race -count=1 ./...
}

bench() {
  local dir="$out/bench"
  rm -rf "$dir"; mkdir -p "$dir"
  # Every benchmark runs -count 5 (the report takes medians); peers run in the same invocation
  # as ours, so both see the same machine state.
  log "bench: core/cache"
  go test -run '^$' -bench . -benchmem -count 5 ./core/cache/ | tee "$dir/cache.txt"
  log "bench: core/managedidentity"
  go test -run '^$' -bench 'CacheHit|ColdPoPAcquire|WarmCertPoPAcquire|ColdCoalesced' -benchmem -count 5 \
    ./core/managedidentity/ | tee "$dir/managedidentity.txt"
  log "bench: fleet simulation (10,000 clients, three token lifetimes)"
  go test -run '^$' -bench Fleet -benchtime 1x ./core/managedidentity/ | tee "$dir/fleet.txt"
  log "bench: libmtlspop and MSAL Go side by side (bench/)"
  (cd bench && go test -run '^$' -bench . -benchmem -count 5 .) | tee "$dir/peers.txt"
  for s in "${surfaces[@]}"; do
    need_script "$s" bench
    log "bench: $s (ci/$s.sh bench)"
    "./ci/$s.sh" bench | tee "$dir/$s.jsonl"
  done
  log "results (build/bench/results.json)"
  (cd bench && go run ./cmd/report "$dir")
}

# demo runs the walkthrough; when swtpm is installed it also shows the TPM path on a throw-away
# swtpm (ci/tpm.sh test installs it), otherwise on /dev/tpmrm0 if this machine has one.
demo() {
  if ! command -v swtpm >/dev/null 2>&1; then
    "$out/mtlspop" demo
    return
  fi
  local port=2331
  demo_dir=$(mktemp -d)
  # An EXIT trap, not RETURN: a failing demo ends the script through set -e, which skips RETURN
  # traps and would leave swtpm holding the port.
  trap stop_demo EXIT
  swtpm socket --tpm2 --tpmstate dir="$demo_dir" --server type=tcp,port=$port,bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear &
  demo_swtpm_pid=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  "$out/mtlspop" demo --tpm-device "tcp://127.0.0.1:$port"
}

# Globals, for the EXIT trap.
demo_swtpm_pid=""
demo_dir=""
stop_demo() {
  if [ -n "$demo_swtpm_pid" ]; then
    kill "$demo_swtpm_pid" 2>/dev/null || true
    wait "$demo_swtpm_pid" 2>/dev/null || true
    demo_swtpm_pid=""
  fi
  if [ -n "$demo_dir" ]; then rm -rf "$demo_dir"; demo_dir=""; fi
}

cmd=${1:-build}
case "$cmd" in
  build) build ;;
  test)
    build; check_format; test_go
    for s in "${surfaces[@]}"; do surface "$s" test; done
    log "all tests passed" ;;
  demo) build; demo ;;
  bench) build; bench ;;
  *) echo "usage: $0 [build|test|demo|bench]" >&2; exit 2 ;;
esac
