#!/usr/bin/env bash
# Installs everything the product and its tests need, idempotently:
# the project's virtualenv (.venv) with the project and its dev extras, and the
# Debian packages the tests start (redis-server). Safe to run again; fast when done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ "${1:-}" = "--with-test-deps" ] && [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    else
        echo "bootstrap: please install: ${need_apt[*]} (needs root)" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    log="$VENV/pip-install.log"
    { "$VENV/bin/python" -m pip install --upgrade pip \
        && "$VENV/bin/python" -m pip install -e ".[dev]"; } >"$log" 2>&1 \
        || { cat "$log" >&2; echo "bootstrap: pip install failed (log above)" >&2; exit 1; }
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi

# Front-end parts (JavaScript client, dashboard bundle, browser for tests) install themselves.
if [ -f scripts/bootstrap-js.sh ]; then
    bash scripts/bootstrap-js.sh "$@"
fi
