# ci/apt.sh — sourced by the ci/ scripts. Tools the tests need that only the OS packages
# (swtpm, valgrind, pkg-config) are installed here, from Debian packages, and never by hand.
#
#   apt_install CMD PKG...   installs PKG... when CMD is not on PATH. Returns 0 when CMD is then
#                            present; 1 otherwise, with the reason in $apt_reason.

apt_reason=""

apt_install() {
  local cmd=$1 sudo="" env=(env DEBIAN_FRONTEND=noninteractive)
  shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  echo "ci: $cmd not found; installing $* from Debian packages" >&2
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      apt_reason="$cmd is not installed and installing it needs root (run: apt-get install -y $*)"
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    apt_reason="$cmd is not installed and there is no apt-get to install it with"
    return 1
  fi
  # Install from the current package lists first; refresh them only when that fails.
  if ! $sudo "${env[@]}" apt-get install -y -qq "$@" >/dev/null 2>&1; then
    $sudo "${env[@]}" apt-get update -qq >/dev/null 2>&1 || true
    if ! $sudo "${env[@]}" apt-get install -y -qq "$@" >/dev/null 2>&1; then
      apt_reason="apt-get install $* failed (no network or no package source?)"
      return 1
    fi
  fi
  if ! command -v "$cmd" >/dev/null 2>&1; then
    apt_reason="$cmd is still missing after apt-get install $*"
    return 1
  fi
}
