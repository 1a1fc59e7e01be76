#!/usr/bin/env bash
# Install what Strata needs on a Debian/Ubuntu machine, then say what is still missing.
#
#   scripts/bootstrap.sh            system programs (apt, as root or with sudo) + .venv
#   VENV=.venv-x PYTHON=python3.13 DJANGO='Django>=6.1,<6.2' scripts/bootstrap.sh
#
# Without root or sudo nothing is installed system-wide: the missing programs are listed
# with the command that installs them, and `strata up` falls back to its embedded layers.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-stack,redis,memcached,postgres,uwsgi,granian,demo,chart,browser,debug,dev}
PACKAGES="varnish varnish-modules haproxy redis-server memcached postgresql pgbouncer wrk openssl chromium iproute2
  prometheus prometheus-redis-exporter prometheus-postgres-exporter prometheus-varnish-exporter"

say() { printf 'bootstrap: %s\n' "$*"; }

missing_packages() {
  local missing=()
  for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  echo "${missing[@]:-}"
}

if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing=$(missing_packages)
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
    if [ "$SUDO" != "none" ]; then
      say "installing $missing"
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      # policy-rc.d keeps the packages' own services from starting: strata runs private instances.
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
      missing=$(missing_packages)
    fi
    if [ -n "$missing" ]; then
      say "missing system packages: $missing"
      say "install them with: sudo apt-get install $missing"
      say "until then, strata up serves the missing layers from Python (embedded mode)"
    fi
  fi
else
  say "not a Debian/Ubuntu machine: install Varnish (with varnish-modules), HAProxy, Redis,"
  say "memcached, PostgreSQL and wrk yourself; strata up falls back to embedded mode without them"
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "Strata needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1 || echo missing)"
  exit 1
fi

# Reinstall only when the project's requirements changed.
stamp="$VENV/.strata-installed"
want="$(cat pyproject.toml; echo "$EXTRAS ${DJANGO:-}")"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing django-strata[$EXTRAS] into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]" ${DJANGO:+"$DJANGO"}
  printf '%s' "$want" > "$stamp"
fi
say "ready: $("$VENV/bin/python" -c 'import django, sys; print(f"Python {sys.version.split()[0]}, Django {django.__version__}")')"
