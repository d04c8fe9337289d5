#!/usr/bin/env bash
# ci/node.sh — the Node package (bindings/node): build/node/mtlspop-<version>.tgz, its tests and
# benchmark.
#
#   ci/node.sh build   install the build tools (bindings/node/tools/package-lock.json: node-api-
#                      headers, typescript, @types/node, @azure/msal-node) into build/node-tools
#                      with npm ci; compile the addon (src/*.c) with the system cc against
#                      build/libmtlspop.so.0 (rpath $ORIGIN); stage the package in build/node/pkg
#                      with the .node and libmtlspop.so.0 in prebuilds/linux-x64/; npm pack it
#   ci/node.sh test    build, then install the tarball into an empty temporary directory (npm
#                      with a PATH holding no compiler; the package has no install script), and
#                      run node --test there (bindings/node/test, copied next to the install,
#                      never against the source tree), then tsc --noEmit on the typed examples
#   ci/node.sh bench   build, install the tarball likewise, then print JSON lines
#                      ({"name","value","unit"[,"peer","peer_value"]}) on stdout: our
#                      acquireTokenSync cache hit and msal-node's ManagedIdentityApplication cache
#                      hit, in one process, against a loopback App Service endpoint
#
# Nothing is installed globally; everything lands under build/. Node 18.17+ and npm are needed;
# without them the step is skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/apt.sh
root=$(pwd)
out="$root/build"
src="$root/bindings/node"
tools="$out/node-tools"
dest="$out/node"
version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' core/version/version.go)
tarball="$dest/mtlspop-$version.tgz"

log() { printf '\n--> node: %s\n' "$*" >&2; }
skip() { echo "ci/node.sh: SKIP $*" >&2; exit 0; }

need_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || skip "node and npm are not installed"
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 17) ? 0 : 1)' ||
    skip "Node.js 18.17 or later is needed (found $(node --version))"
}

# npm prints a warning about the machine's ~/.npmrc "nodedir" on every run; not ours to fix.
grep_bin=$(command -v grep)
quiet_npm() { "$@" 2> >("$grep_bin" -v 'Unknown user config "nodedir"' >&2); }

install_tools() {
  mkdir -p "$tools"
  if cmp -s "$src/tools/package-lock.json" "$tools/package-lock.json" && [ -d "$tools/node_modules/node-api-headers" ]; then
    return 0
  fi
  log "npm ci (build tools) -> build/node-tools"
  cp "$src/tools/package.json" "$src/tools/package-lock.json" "$tools/"
  if ! (cd "$tools" && quiet_npm npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    rm -f "$tools/package-lock.json"
    echo "ci/node.sh: npm ci failed (is the npm registry reachable?)" >&2
    return 1
  fi
}

build() {
  need_node
  # cc compiles the addon; binutils' objcopy and readelf strip the library and check the addon.
  need_tools ci/node.sh cc:gcc objcopy:binutils readelf:binutils
  [ -f "$out/libmtlspop.so.0" ] || ./ci/capi.sh build
  install_tools
  local stage="$dest/pkg" target="linux-x64"
  [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || target="$(node -p 'process.platform + "-" + process.arch')"
  log "cc bindings/node/src/*.c -> prebuilds/$target/mtlspop.node"
  rm -rf "$stage"
  mkdir -p "$stage/prebuilds/$target"
  # NAPI_VERSION 8 (in addon.h): Node 12.22+/14.17+/16+; N-API is ABI-stable across versions.
  # -z nodelete: Node unloads an addon when the last environment that loaded it (say, a worker
  # thread) ends, but the library keeps running the addon's completion callback and threads
  # (and a Go runtime cannot be unloaded anyway): the addon must stay mapped.
  cc -std=c11 -O2 -g -fPIC -shared -fvisibility=hidden -pthread -D_GNU_SOURCE \
    -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
    -I"$tools/node_modules/node-api-headers/include" -I"$out/include" \
    "$src"/src/*.c -L"$out" -lmtlspop -Wl,-rpath,'$ORIGIN' -Wl,--as-needed -Wl,-z,relro,-z,now,-z,nodelete \
    -o "$stage/prebuilds/$target/mtlspop.node"
  # The library ships beside the addon; its debug info is not needed to run it.
  objcopy --strip-debug "$out/libmtlspop.so.0" "$stage/prebuilds/$target/libmtlspop.so.0"
  cp -r "$src/lib" "$src/index.d.ts" "$src/package.json" "$src/README.md" "$stage/"
  check_package "$stage"
  log "npm pack -> build/node/$(basename "$tarball")"
  rm -f "$dest"/mtlspop-*.tgz
  (cd "$stage" && quiet_npm npm pack --pack-destination "$dest" --loglevel=error >/dev/null)
  [ -f "$tarball" ] || { echo "npm pack did not produce $tarball" >&2; return 1; }
  echo "$(basename "$tarball"): $(du -h "$tarball" | cut -f1)" >&2
}

# check_package: what must hold of the package itself: the version, no scripts (npm would run an
# install script, and would run node-gyp for a binding.gyp), the addon's link.
check_package() {
  local stage=$1
  node -e '
    const p = require(process.argv[1] + "/package.json");
    if (p.version !== process.argv[2]) throw new Error(`package.json version ${p.version}, core/version says ${process.argv[2]}`);
    if (p.scripts && Object.keys(p.scripts).length) throw new Error("package.json must have no scripts");
    if (p.gypfile) throw new Error("package.json must not set gypfile");
  ' "$stage" "$version"
  if find "$stage" -name binding.gyp | grep -q .; then echo "binding.gyp in the package" >&2; return 1; fi
  local node_file
  node_file=$(find "$stage/prebuilds" -name mtlspop.node)
  readelf -d "$node_file" | grep -q 'R.*PATH.*\[\$ORIGIN\]' || { echo "the addon has no \$ORIGIN rpath" >&2; return 1; }
  readelf -d "$node_file" | grep -q 'NEEDED.*\[libmtlspop.so.0\]' || { echo "the addon does not link libmtlspop.so.0" >&2; return 1; }
  readelf -d "$node_file" | grep -q 'FLAGS_1.*NODELETE' || { echo "the addon is not NODELETE" >&2; return 1; }
}

# install_tarball DIR: npm install the tarball into DIR (empty), with no compiler on the PATH.
install_tarball() {
  local dir=$1 bin="$1/.bin-nocc"
  mkdir -p "$bin"
  ln -s "$(command -v node)" "$bin/node"
  ln -s "$(command -v npm)" "$bin/npm"
  printf '{"name":"mtlspop-install-check","private":true}\n' > "$dir/package.json"
  log "npm install $(basename "$tarball") into an empty directory (PATH: node and npm only)"
  (cd "$dir" && PATH="$bin" quiet_npm npm install --no-audit --no-fund --loglevel=error "$tarball" >/dev/null)
  [ -f "$dir/node_modules/mtlspop/package.json" ] || { echo "mtlspop is not installed in $dir" >&2; return 1; }
}

test_node() {
  build
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  install_tarball "$tmp"
  cp -r "$src/test" "$tmp/test"
  cp -r "$src/examples" "$tmp/examples"
  log "node --test (the installed package, in $tmp)"
  (cd "$tmp" && MTLSPOP_EMULATOR="$out/mtlspop" node --test --test-reporter=spec test/*.test.js test/*.test.mjs) >&2
  log "tsc --noEmit (index.d.ts through typed examples, CommonJS and ESM)"
  mkdir -p "$tmp/node_modules/@types"
  ln -s "$tools/node_modules/@types/node" "$tmp/node_modules/@types/node"
  (cd "$tmp/test/types" && node "$tools/node_modules/typescript/bin/tsc" --noEmit -p tsconfig.json) >&2
  echo "types: ok" >&2
}

bench_node() {
  build >&2
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  install_tarball "$tmp" >&2
  cp -r "$src/bench" "$tmp/bench"
  log "bench: acquireTokenSync cache hit vs msal-node ManagedIdentityApplication (App Service, loopback)"
  (cd "$tmp" && MTLSPOP_EMULATOR="$out/mtlspop" MSAL_NODE_MODULES="$tools/node_modules" node bench/bench.js)
}

case "${1:-}" in
  build) build ;;
  test) test_node ;;
  bench) bench_node ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
