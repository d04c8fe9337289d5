#!/usr/bin/env bash
# ci/python.sh — the Python package (bindings/python): its wheel, tests and benchmark.
#
#   ci/python.sh build   build/python/mtlspop-<version>-py3-none-linux_x86_64.whl, with
#                        build/libmtlspop.so.0 (from ci/capi.sh build) inside; then installs it
#                        into a fresh venv with --no-index and imports it (no network, no compiler)
#   ci/python.sh test    build, then pytest (bindings/python/tests) against the wheel installed in
#                        a fresh venv, run from outside the source tree, with the emulator; and
#                        mypy --strict on the installed package and a typed caller
#   ci/python.sh bench   build, then print the cache-hit benchmark, ours and MSAL Python's in the
#                        same run, as JSON lines ({"name","value","unit"[,"peer","peer_value"]})
#                        on stdout; everything else goes to stderr
#
# Tooling (setuptools, build, pytest, mypy, and msal for the benchmark peer) comes from PyPI,
# pinned, into build/python/wheelhouse once, and from there into venvs under build/python —
# never globally. Every venv that runs the package is fresh, and installs with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/apt.sh
root=$(pwd)
out="$root/build"
pyout="$out/python"
src="$root/bindings/python"
python=${PYTHON:-python3}
# Every step runs the interpreter (already in the lines below) and makes venvs: on a fresh
# Debian, python3 and python3-venv come from apt here.
case "${1:-}" in build | test | bench) need_python_venv ci/python.sh "$python" ;; esac
version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' core/version/version.go)
plat=$("$python" -c 'import sysconfig as s; print(s.get_platform().replace("-", "_").replace(".", "_"))')
wheel="$pyout/mtlspop-$version-py3-none-$plat.whl"

# Pinned tooling; bump deliberately.
pins=(setuptools==84.2.1 build==1.6.1 pytest==9.2.0 mypy==2.4.1 msal==1.39.0)

log() { printf '\n--> python: %s\n' "$*" >&2; }

# pin NAME: NAME's pinned requirement, e.g. "pytest==9.2.0".
pin() { printf '%s\n' "${pins[@]}" | grep "^$1=="; }

# fresh_venv DIR: a new virtual environment (pip comes from the interpreter's ensurepip, offline).
fresh_venv() {
  rm -rf "$1"
  "$python" -m venv "$1"
}

# pip_offline VENV ARGS...: pip install from the wheelhouse only.
pip_offline() {
  local venv=$1; shift
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index \
    --find-links "$pyout/wheelhouse" "$@" >&2
}

tools() {
  local stamp="$pyout/wheelhouse/.pins"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${pins[*]}" ]; then
    log "download pinned tooling from PyPI into build/python/wheelhouse: ${pins[*]}"
    rm -rf "$pyout/wheelhouse"
    mkdir -p "$pyout/wheelhouse"
    "$python" -m pip download -q --disable-pip-version-check --only-binary=:all: \
      --dest "$pyout/wheelhouse" "${pins[@]}" >&2
    echo "${pins[*]}" > "$stamp"
    rm -rf "$pyout/tools"
  fi
  if [ ! -x "$pyout/tools/bin/python" ]; then
    log "tools venv (build/python/tools): setuptools, build"
    fresh_venv "$pyout/tools"
    pip_offline "$pyout/tools" --upgrade "$(pin setuptools)" "$(pin build)"
  fi
}

build() {
  if [ ! -f "$out/libmtlspop.so.0" ]; then
    echo "ci/python.sh: build/libmtlspop.so.0 is missing; run ./build.sh (or ci/capi.sh build)" >&2
    exit 1
  fi
  mkdir -p "$pyout"
  tools
  log "stage bindings/python with build/libmtlspop.so.0 -> build/python/stage"
  local stage="$pyout/stage"
  rm -rf "$stage"
  mkdir -p "$stage"
  cp -R "$src/pyproject.toml" "$src/setup.py" "$src/README.md" "$src/mtlspop" "$stage/"
  find "$stage" -name '__pycache__' -prune -exec rm -rf {} +
  cp "$out/libmtlspop.so.0" "$stage/mtlspop/libmtlspop.so.0"
  log "wheel -> ${wheel#"$root"/}"
  rm -f "$pyout"/mtlspop-*.whl
  if ! (cd "$stage" &&
    "$pyout/tools/bin/python" -m build --wheel --no-isolation --outdir "$pyout" . \
      >"$pyout/build.log" 2>&1); then
    cat "$pyout/build.log" >&2
    exit 1
  fi
  if [ ! -f "$wheel" ]; then
    echo "ci/python.sh: expected $wheel, got:" >&2
    ls "$pyout"/*.whl >&2 || true
    exit 1
  fi
  log "install the wheel into a fresh venv (--no-index, no compiler) and import it"
  fresh_venv "$pyout/venv-smoke"
  (cd /tmp && CC=/bin/false "$pyout/venv-smoke/bin/python" -m pip install -q \
    --disable-pip-version-check --no-index --no-deps "$wheel" >&2)
  (cd /tmp && "$pyout/venv-smoke/bin/python" - "$version" "$pyout/venv-smoke" <<'EOF'
import os, sys
import mtlspop
want, venv = sys.argv[1], sys.argv[2]
assert mtlspop.__version__ == want, (mtlspop.__version__, want)
assert os.path.realpath(mtlspop.__file__).startswith(os.path.realpath(venv)), mtlspop.__file__
assert os.path.exists(os.path.join(os.path.dirname(mtlspop.__file__), "libmtlspop.so.0"))
assert os.path.exists(os.path.join(os.path.dirname(mtlspop.__file__), "py.typed"))
print("mtlspop", mtlspop.__version__, "imports from", os.path.dirname(mtlspop.__file__),
      file=sys.stderr)
EOF
  )
}

test_python() {
  build
  log "pytest against the installed wheel (fresh venv build/python/venv-test)"
  local venv="$pyout/venv-test"
  fresh_venv "$venv"
  pip_offline "$venv" "$wheel" "$(pin pytest)" "$(pin mypy)"
  rm -rf "$pyout/testrun"
  mkdir -p "$pyout/testrun"
  # Run from an empty directory, without bytecode or cache files in the source tree; the tests
  # check that mtlspop comes from the venv. `timeout` bounds a hang that escaped every test's
  # own bound.
  (cd "$pyout/testrun" && PYTHONDONTWRITEBYTECODE=1 MTLSPOP_CLI="$out/mtlspop" \
    MTLSPOP_TEST_VENV="$venv" MTLSPOP_HEADER="$root/include/mtlspop.h" MTLSPOP_SOURCE_ROOT="$root" \
    timeout 300 "$venv/bin/python" -m pytest -q -rs --rootdir "$src" -c "$src/pyproject.toml" \
    "$src/tests")
  log "mypy --strict: the installed package (py.typed) and a typed caller"
  (cd "$pyout/testrun" &&
    "$venv/bin/python" -m mypy --strict --no-incremental --cache-dir=/dev/null -p mtlspop >&2 &&
    "$venv/bin/python" -m mypy --strict --no-incremental --cache-dir=/dev/null \
      "$src/tests/typecheck_usage.py" >&2)
}

bench_python() {
  build
  log "bench venv (fresh): the wheel and msal"
  local venv="$pyout/venv-bench"
  fresh_venv "$venv"
  pip_offline "$venv" "$wheel" "$(pin msal)"
  (cd "$pyout" && PYTHONDONTWRITEBYTECODE=1 MTLSPOP_CLI="$out/mtlspop" \
    "$venv/bin/python" "$src/bench/bench.py")
}

case "${1:-}" in
  build) build ;;
  test) test_python ;;
  bench) bench_python ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
