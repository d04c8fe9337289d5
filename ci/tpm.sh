#!/usr/bin/env bash
# TPM surface: core/tpm and core/attest.
#
#   ci/tpm.sh build   the TPM packages build without cgo (the simulator is for tests only)
#   ci/tpm.sh test    install swtpm if missing, start it on loopback TCP with an EK certificate
#                     from a throw-away local CA, run the swtpm integration tests and the CLI's
#                     attested IMDSv2 flow, stop it
#   ci/tpm.sh bench   nothing of its own: the TPM command counts come from the Go benchmarks on
#                     the simulator (BenchmarkTPMPoPCacheHit), which ./build.sh bench runs
#
# The simulator-based tests run with every other Go test (go test ./...); these are the ones
# that need a TPM in another process, reached the way /dev/tpmrm0 is: over a byte stream.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/apt.sh

step=${1:-}

skip() {
  echo "ci/tpm.sh: SKIP swtpm integration tests: $*"
  exit 0
}

ensure_swtpm() {
  if command -v swtpm_setup >/dev/null 2>&1 || apt_install swtpm_setup swtpm swtpm-tools; then
    command -v swtpm >/dev/null 2>&1 && return 0
    apt_reason="swtpm_setup is installed but swtpm is not"
  fi
  skip "$apt_reason"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Globals, so the EXIT trap sees them however the script ends (a failed command under set -e
# included): every background process this script starts is stopped there.
swtpm_pid=""
emu_pid=""
work_dir=""
stop_pid() { # stop_pid NAME PID
  if [ -n "$2" ] && kill -0 "$2" 2>/dev/null; then
    echo "ci/tpm.sh: stopping $1 (pid $2)"
    kill "$2" 2>/dev/null || true
    wait "$2" 2>/dev/null || true
  fi
}
cleanup() {
  stop_pid emulator "$emu_pid"
  stop_pid swtpm "$swtpm_pid"
  if [ -n "$work_dir" ]; then rm -rf "$work_dir"; fi
}
trap cleanup EXIT

test_swtpm() {
  ensure_swtpm
  # python3 reads the emulator's JSON and checks the tokens in cli_flow.
  need_tools ci/tpm.sh python3:python3
  local dir port
  work_dir=$(mktemp -d)
  dir=$work_dir

  # The standard ports (2321 data, 2322 control), or the next free pair.
  port=${MTLSPOP_SWTPM_PORT:-2321}
  for _ in $(seq 1 20); do
    if ! port_busy "$port" && ! port_busy $((port + 1)); then break; fi
    port=$((port + 2))
  done

  # Manufacture the TPM: an RSA-2048 EK with a certificate in NV 0x01C00002, issued by a local CA
  # that lives only in $dir (never the system's /var/lib/swtpm-localca).
  mkdir -p "$dir/state" "$dir/ca"
  cat >"$dir/localca.conf" <<CONF
statedir = $dir/ca
signingkey = $dir/ca/signkey.pem
issuercert = $dir/ca/issuercert.pem
certserial = $dir/ca/certserial
CONF
  cat >"$dir/setup.conf" <<CONF
create_certs_tool = $(command -v swtpm_localca || echo /usr/bin/swtpm_localca)
create_certs_tool_config = $dir/localca.conf
create_certs_tool_options = /etc/swtpm-localca.options
active_pcr_banks = sha256
CONF
  local ekroots=""
  if swtpm_setup --tpm2 --tpmstate "$dir/state" --config "$dir/setup.conf" --create-ek-cert --overwrite >"$dir/setup.log" 2>&1 &&
    [ -f "$dir/ca/swtpm-localca-rootca-cert.pem" ]; then
    cat "$dir/ca/swtpm-localca-rootca-cert.pem" "$dir/ca/issuercert.pem" >"$dir/ekroots.pem"
    ekroots="$dir/ekroots.pem"
  else
    echo "ci/tpm.sh: note: swtpm_setup could not provision an EK certificate; the EK-trust test will skip:"
    sed 's/^/    /' "$dir/setup.log" || true
  fi

  echo "ci/tpm.sh: starting swtpm on 127.0.0.1:$port (control $((port + 1)))"
  swtpm socket --tpm2 --tpmstate dir="$dir/state" \
    --server type=tcp,port="$port",bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear \
    --log file="$dir/swtpm.log",level=1 &
  swtpm_pid=$!
  for _ in $(seq 1 50); do
    port_busy "$port" && break
    kill -0 "$swtpm_pid" 2>/dev/null || { cat "$dir/swtpm.log" || true; echo "ci/tpm.sh: swtpm exited at start" >&2; exit 1; }
    sleep 0.1
  done
  port_busy "$port" || { echo "ci/tpm.sh: swtpm is not listening on $port" >&2; exit 1; }

  # swtpm serves one connection at a time: packages run one after the other (-p 1).
  MTLSPOP_SWTPM="tcp://127.0.0.1:$port" MTLSPOP_SWTPM_EK_ROOTS="$ekroots" \
    go test -race -count=1 -p 1 -v -run SWTPM ./core/tpm/ ./core/attest/ ./capi/

  cli_flow "$dir" "tcp://127.0.0.1:$port" "$ekroots"
}

# cli_flow is the issue's "done when": build/mtlspop token --mtls-pop --key tpm --attest against
# an emulator that requires attestation returns a PoP token whose binding certificate's key is
# the TPM key (binding_key "tpm"; the emulator issued the certificate only for the attested key),
# bound to that certificate (cnf), and a second process reuses the persisted key and certificate.
cli_flow() {
  local dir=$1 device=$2 ekroots=$3 trust
  if [ -n "$ekroots" ]; then trust=(--attestation-ek-roots "$ekroots"); else trust=(--attestation-trust-any-ak); fi
  [ -x build/mtlspop ] || go build -o build/mtlspop ./cmd/mtlspop
  build/mtlspop emulator --require-attestation "${trust[@]}" >"$dir/emu.json" </dev/null &
  emu_pid=$!
  for _ in $(seq 1 100); do [ -s "$dir/emu.json" ] && break; sleep 0.1; done
  local env
  env=$(python3 -c 'import json,sys;print(" ".join(k+"="+v for k,v in json.load(open(sys.argv[1]))["env"].items()))' "$dir/emu.json")
  local args=(token --resource api://mtlspop-emulator --mtls-pop --key tpm --tpm-device "$device" --tpm-state-dir "$dir/keys" --attest)
  echo "ci/tpm.sh: build/mtlspop ${args[*]}"
  env $env build/mtlspop "${args[@]}" >"$dir/tok1.json"
  env $env build/mtlspop "${args[@]}" --force-refresh >"$dir/tok2.json"
  kill "$emu_pid" 2>/dev/null || true
  wait "$emu_pid" 2>/dev/null || true
  emu_pid=""
  python3 - "$dir/tok1.json" "$dir/tok2.json" <<'PY'
import base64, hashlib, json, ssl, sys
t1, t2 = (json.load(open(p)) for p in sys.argv[1:3])
assert t1["token_type"] == "mtls_pop", t1["token_type"]
assert t1["binding_key"] == "tpm", t1["binding_key"]
payload = t1["access_token"].split(".")[1]
cnf = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["cnf"]["x5t#S256"]
der = ssl.PEM_cert_to_DER_cert(t1["binding_certificate_pem"])
assert cnf == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode(), "cnf does not match the certificate"
assert t2["binding_certificate_thumbprint"] == t1["binding_certificate_thumbprint"], "a second process did not reuse the TPM key and certificate"
print("ci/tpm.sh: attested TPM PoP token through the CLI: ok (cnf matches, key in the TPM, reused by a second process)")
PY
}

case "$step" in
  build)
    # The library must stay cgo-free: only _test.go files use the cgo simulator.
    CGO_ENABLED=0 go build ./core/tpm/ ./core/attest/
    ;;
  test) test_swtpm ;;
  bench) ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
