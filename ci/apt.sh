# ci/apt.sh — sourced by the ci/ scripts. Tools the tests need that only the OS packages
# provide (compilers, binutils, python3, swtpm, valgrind, pkg-config) are installed here, from
# Debian packages, and never by hand. Each step installs what it uses when it starts, so a fresh
# machine needs nothing beforehand; when everything is present these print nothing.
#
#   apt_install CMD PKG...       installs PKG... when CMD is not on PATH. Returns 0 when CMD is
#                                then present; 1 otherwise, with the reason in $apt_reason.
#   apt_ensure WHAT PKGS CHECK...
#                                runs the command CHECK... (quietly) and, when it fails, installs
#                                the space-separated PKGS and runs it again; for what a command
#                                lookup cannot tell (python3 without venv). Same returns.
#   need_tools SCRIPT CMD:PKG... apt_install each CMD from PKG, or exit 1 naming SCRIPT and why.
#   need_python_venv SCRIPT PY   PY (python3 by default) exists and can make a venv with pip, or
#                                exit 1.

apt_reason=""

apt_install() {
  local cmd=$1
  shift
  apt_ensure "$cmd" "$*" command -v "$cmd"
}

apt_ensure() {
  local what=$1 pkgs=$2 sudo="" env=(env DEBIAN_FRONTEND=noninteractive)
  shift 2
  "$@" >/dev/null 2>&1 && return 0
  echo "ci: $what not found; installing $pkgs from Debian packages" >&2
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      apt_reason="$what is not installed and installing it needs root (run: apt-get install -y $pkgs)"
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    apt_reason="$what is not installed and there is no apt-get to install it with"
    return 1
  fi
  # Install from the current package lists first; refresh them only when that fails.
  # shellcheck disable=SC2086 # pkgs is a list of package names
  if ! $sudo "${env[@]}" apt-get install -y -qq $pkgs >/dev/null 2>&1; then
    $sudo "${env[@]}" apt-get update -qq >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    if ! $sudo "${env[@]}" apt-get install -y -qq $pkgs >/dev/null 2>&1; then
      apt_reason="apt-get install $pkgs failed (no network or no package source?)"
      return 1
    fi
  fi
  if ! "$@" >/dev/null 2>&1; then
    apt_reason="$what is still missing after apt-get install $pkgs"
    return 1
  fi
}

need_tools() {
  local script=$1 t
  shift
  for t in "$@"; do
    apt_install "${t%%:*}" "${t#*:}" || { echo "$script: $apt_reason" >&2; exit 1; }
  done
}

# python_venv_ok PY: PY has the venv module and ensurepip, which `PY -m venv` needs to put pip in
# a venv. Debian ships both only with python3-venv, yet `python3 -m venv --help` works without it.
python_venv_ok() {
  "$1" -c 'import venv' && "$1" -m ensurepip --version
}

need_python_venv() {
  local script=$1 py=${2:-python3}
  need_tools "$script" "$py:python3"
  apt_ensure "$py -m venv" python3-venv python_venv_ok "$py" || { echo "$script: $apt_reason" >&2; exit 1; }
}
