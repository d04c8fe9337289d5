#!/usr/bin/env bash
# ci/capi.sh — the C ABI: build/libmtlspop.so.0, include/mtlspop.h, its tests and benchmark.
#
#   ci/capi.sh build   build/libmtlspop.so.0 (SONAME libmtlspop.so.0) + libmtlspop.so symlink,
#                      build/include/mtlspop.h, build/mtlspop.pc
#   ci/capi.sh test    build, then: go vet/test ./capi, header <-> exports check, header compiles
#                      as C and C++, the C suite (capi/ctest) natively and under valgrind, and the
#                      README's C example (examples/c) compiled through pkg-config and run
#                      against the emulator
#   ci/capi.sh bench   build, then print the C benchmark as JSON lines ({"name","value","unit"})
#                      on stdout (everything else goes to stderr); build.sh bench collects them
#
# Memory checking: valgrind memcheck, not ASan. ASan needs the whole process instrumented and
# its runtime loaded first; the Go runtime inside libmtlspop is not instrumented, and LSan's
# exit-time scan does not know Go's heap or its signal stacks. Valgrind checks the C side as
# built (the handle table, every object the library mallocs, and whether *_free releases it)
# without rebuilding anything, and follows the library's own threads. What valgrind cannot
# follow is Go's own code: goroutine stacks are switched and grown by the runtime, which memcheck
# reports as invalid reads and writes in Go functions. capi/ctest/valgrind.supp suppresses
# exactly those (errors whose innermost frame is a Go function, i.e. a symbol containing a dot)
# and the Go runtime's one-time allocations (thread TLS of the runtime's own threads). Go's
# `-tags valgrind` instrumentation (Go 1.25+) makes valgrind 3.19 abort ("overlapping blocks"),
# so it is not used. Leaks of Go heap memory are invisible to valgrind either way; the suite
# checks those through mtlspop_live_objects().
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/apt.sh
root=$(pwd)
out="$root/build"
version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' core/version/version.go)

log() { printf '\n--> capi: %s\n' "$*" >&2; }

build() {
  # cgo compiles with gcc (go env CC); the C tests, the example and the node addon with cc.
  need_tools ci/capi.sh gcc:gcc cc:gcc
  mkdir -p "$out/include"
  log "go build -buildmode=c-shared -> build/libmtlspop.so.0"
  # DWARF 4, not Go 1.25+'s default DWARF 5: valgrind < 3.20 and older debuggers cannot read
  # DWARF 5 (valgrind: "unhandled DW_FORM_addrx") and lose symbols of the library.
  GOEXPERIMENT="${GOEXPERIMENT:+$GOEXPERIMENT,}nodwarf5" go build -trimpath -buildmode=c-shared \
    -ldflags "-extldflags '-Wl,-soname,libmtlspop.so.0 -Wl,--version-script=$root/capi/exports.map'" \
    -o "$out/libmtlspop.so.0" ./capi
  rm -f "$out/libmtlspop.so.h" "$out/libmtlspop.so.0.h" # cgo's header; include/mtlspop.h is the API
  ln -sfn libmtlspop.so.0 "$out/libmtlspop.so"
  cp include/mtlspop.h "$out/include/mtlspop.h"
  # The build tree's .pc carries an rpath, so programs built from it run in place; an installed
  # library would not need one.
  cat > "$out/mtlspop.pc" <<EOF
prefix=$out
libdir=\${prefix}
includedir=\${prefix}/include

Name: mtlspop
Description: Certificate-bound (mTLS PoP) Azure access tokens, and their verification
URL: https://github.com/mtlspop/mtlspop
Version: $version
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lmtlspop
Cflags: -I\${includedir}
EOF
  # Always (an up-to-date binary is not relinked): the C tests run this tree's emulator, and an
  # older build/mtlspop would test the library against an emulator that lacks what they check.
  go build -trimpath -o "$out/mtlspop" ./cmd/mtlspop
}

# check_exports: the .so exports exactly the functions the header declares, with the SONAME, and
# the header's version macro is the library's version.
check_exports() {
  log "exports == include/mtlspop.h declarations; SONAME; version"
  local declared exported
  declared=$(grep -oE '\bmtlspop_[a-z0-9_]+\(' include/mtlspop.h | tr -d '(' | grep -v '_fn$' | sort -u)
  exported=$(nm -D --defined-only "$out/libmtlspop.so.0" | awk '{print $3}' | sed 's/@.*//' | grep -vx 'LIBMTLSPOP_0' | sort -u)
  if [ "$declared" != "$exported" ]; then
    echo "header and library disagree (< header only, > library only):"
    diff <(echo "$declared") <(echo "$exported") || true
    return 1
  fi
  echo "$(echo "$exported" | wc -l) functions, all declared, all exported, nothing else exported"
  readelf -d "$out/libmtlspop.so.0" | grep -q 'Library soname: \[libmtlspop.so.0\]' ||
    { echo "SONAME is not libmtlspop.so.0"; return 1; }
  grep -q "#define MTLSPOP_VERSION        \"$version\"" include/mtlspop.h ||
    { echo "MTLSPOP_VERSION in include/mtlspop.h is not core/version's $version"; return 1; }
  # Symbols with a dot are what valgrind.supp treats as Go code; none may come from mtlspop.c:
  # a compiler clone of one of its functions (slot_get.constprop.0, err_new.part.0, ...).
  local ours
  ours=$(c_functions | paste -sd'|')
  [ -n "$ours" ] || { echo "found no function definitions in capi/mtlspop.c"; return 1; }
  if nm "$out/libmtlspop.so.0" | awk '{print $3}' | grep -E "^($ours)\."; then
    echo "mtlspop.c produced cloned symbols; the valgrind suppressions would hide their errors"
    return 1
  fi
}

# c_functions prints the name of every function capi/mtlspop.c defines (one a line): a line
# that starts, unindented, with a return type and ends its first token run in "name(".
c_functions() {
  grep -oE '^[a-z][a-z0-9_ *]*[ *]([a-z_][a-z0-9_]*)\(' capi/mtlspop.c |
    sed -E 's/.*[ *]([a-z_][a-z0-9_]*)\($/\1/' | sort -u
}

check_header() {
  log "include/mtlspop.h compiles as C99 and C++11"
  printf '#include <mtlspop.h>\nint main(void) { return mtlspop_abi_version() != MTLSPOP_ABI_VERSION; }\n' > "$out/ctest/header.c"
  cc -std=c99 -Wall -Wextra -Wpedantic -Werror -I"$out/include" -c "$out/ctest/header.c" -o /dev/null
  g++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -x c++ -I"$out/include" -c "$out/ctest/header.c" -o /dev/null
}

compile_c() { # compile_c out src...
  local dst=$1; shift
  cc -std=c11 -O1 -g -Wall -Wextra -Werror -pthread -I"$out/include" -Icapi/ctest "$@" \
    -L"$out" -Wl,-rpath,"$out" -lmtlspop -o "$dst"
}

# go_symbols_supp writes suppressions for the library's undotted Go and cgo functions (assembly
# helpers such as memeqbody, cgo glue such as _cgo_*_Cfunc_*): every function symbol in the .so
# that capi/mtlspop.c does not define; and, because memcheck matches a syscall parameter's name
# exactly, one for each parameter name memcheck knows, when Go code makes the syscall. See
# capi/ctest/valgrind.supp.
go_symbols_supp() {
  local ours syms
  ours=$(c_functions)
  syms=$(nm "$out/libmtlspop.so.0" | awk '$2 ~ /^[tT]$/ {print $3}' | grep -v '[.:(]' | sort -u |
    grep -vxF -f <(echo "$ours") | grep -vE '^mtlspop(_|c_)')
  for f in $syms; do
    for k in Addr1 Addr2 Addr4 Addr8 Addr16 Addr32; do
      printf '{\n   go-%s-%s\n   Memcheck:%s\n   fun:%s\n}\n' "$f" "$k" "$k" "$f"
    done
  done > "$out/ctest/go-symbols.supp"
  local memcheck
  memcheck=$(ls /usr/libexec/valgrind/memcheck-*-linux /usr/lib/valgrind/memcheck-*-linux \
    /usr/local/libexec/valgrind/memcheck-*-linux 2>/dev/null | head -1 || true)
  if [ -n "$memcheck" ]; then
    # Names such as "read(buf)", and sockaddr fields memcheck formats into "connect(serv_addr.%s)".
    {
      strings "$memcheck" | grep -E '^[a-z_0-9.]+\([a-zA-Z_0-9>.-]+\)$'
      strings "$memcheck" | grep -E '^[a-z_0-9.]+\([a-zA-Z_0-9>.-]*%s[a-zA-Z_0-9>.-]*\)$' |
        while read -r f; do
          for field in sa_family sun_path sin_port sin_addr sin6_port sin6_flowinfo sin6_addr \
            sin6_scope_id nl_pid nl_groups; do
            printf "${f//%s/%s}\n" "$field"
          done
        done
    } | sort -u |
      awk '{printf "{\n   go-syscall-%s\n   Memcheck:Param\n   %s\n   fun:*.*\n}\n", $0, $0}' \
      >> "$out/ctest/go-symbols.supp"
  fi
}

run_suite() {
  log "C suite, natively"
  "$out/ctest/capi_test" "$out/mtlspop"
  log "C suite under valgrind (memcheck; every leak kind, reachable included, is an error)"
  go_symbols_supp
  valgrind -q --error-exitcode=1 --undef-value-errors=no --read-inline-info=no --leak-check=full \
    --show-leak-kinds=all --errors-for-leak-kinds=all \
    --suppressions=capi/ctest/valgrind.supp --suppressions="$out/ctest/go-symbols.supp" \
    --child-silent-after-fork=yes --fair-sched=yes \
    "$out/ctest/capi_test" "$out/mtlspop"
}

# Globals, so that the EXIT trap can stop and remove them however the script ends.
emu_pid=""
tmp_dir=""
stop_emulator() {
  if [ -n "$emu_pid" ]; then
    kill "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
    emu_pid=""
  fi
}
cleanup() {
  stop_emulator
  if [ -n "$tmp_dir" ]; then rm -rf "$tmp_dir"; fi
}
trap cleanup EXIT

run_example() {
  log "examples/c: cc example.c \$(pkg-config --cflags --libs mtlspop), against the emulator"
  local tmp
  tmp_dir=$(mktemp -d)
  tmp=$tmp_dir
  # shellcheck disable=SC2046
  cc -std=c99 -Wall -Wextra -Werror -o "$out/ctest/example" examples/c/example.c \
    $(PKG_CONFIG_PATH="$out" pkg-config --cflags --libs mtlspop)
  "$out/mtlspop" emulator < /dev/null > "$tmp/emu.json" &
  emu_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/emu.json" ] && break; sleep 0.05; done
  local rc=0
  (
    eval "$(python3 -c '
import json, shlex, sys
e = json.load(open(sys.argv[1]))
for k, v in e["env"].items():
    print("export " + k + "=" + shlex.quote(v))
print("export RESOURCE_URL=" + shlex.quote(e["urls"]["resource"]))
' "$tmp/emu.json")"
    "$out/ctest/example" "$RESOURCE_URL" api://mtlspop-emulator > "$tmp/out.txt"
  ) || rc=$?
  stop_emulator
  cat "$tmp/out.txt"
  grep -q -- '-----BEGIN CERTIFICATE-----' "$tmp/out.txt" && grep -q 'status 200' "$tmp/out.txt" || rc=1
  rm -rf "$tmp"
  tmp_dir=""
  return $rc
}

# The test tools that come from OS packages. Unlike swtpm (ci/tpm.sh), these are not optional:
# without valgrind the memory checks the C ABI promises would not run, so their absence fails.
# g++: the header compiles as C++; binutils: nm, readelf, strings (exports, SONAME, valgrind
# suppressions); python3: reading the emulator's JSON for the example.
ensure_tools() {
  need_tools ci/capi.sh valgrind:valgrind pkg-config:pkg-config g++:g++ \
    nm:binutils readelf:binutils strings:binutils python3:python3
}

test_capi() {
  ensure_tools
  build
  mkdir -p "$out/ctest"
  log "go vet and go test ./capi (the Go side: parsing, status mapping, client, verifier)"
  go vet ./capi
  go test -count=1 ./capi
  check_exports
  check_header
  log "compile capi/ctest/capi_test.c"
  compile_c "$out/ctest/capi_test" capi/ctest/capi_test.c
  run_suite
  run_example
}

bench_capi() {
  build
  mkdir -p "$out/ctest"
  cc -std=c11 -O2 -Wall -Wextra -Werror -pthread -I"$out/include" -Icapi/ctest capi/bench/bench.c \
    -L"$out" -Wl,-rpath,"$out" -lmtlspop -o "$out/ctest/bench"
  "$out/ctest/bench" "$out/mtlspop"
}

case "${1:-}" in
  build) build ;;
  test) test_capi ;;
  bench) bench_capi ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
