#!/usr/bin/env bash
# Installs what the product needs, idempotently: the project's virtualenv (.venv) with the
# project and its dependencies at the tested versions (constraints.txt), and the dashboard
# bundle. With --with-test-deps (scripts/test.sh) also the dev extras (pytest, mypy, ruff,
# ...) and the Debian packages the tests start (redis-server). Says what it does while it
# does it; safe to run again, and fast when done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
with_tests=0
[ "${1:-}" = "--with-test-deps" ] && with_tests=1

say() { echo "bootstrap: $*" >&2; }

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ "$with_tests" = 1 ] && [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        say "installing ${need_apt[*]} (apt-get)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    else
        say "please install: ${need_apt[*]} (needs root)"
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtualenv $VENV ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV"
fi

# pip, its output kept in $log; on a terminal, each package is named as pip fetches it.
log="$VENV/pip-install.log"
pip_install() {
    if [ -t 2 ]; then
        "$VENV/bin/python" -m pip install "$@" 2>&1 | tee -a "$log" \
            | sed -un -e 's/^Collecting \([A-Za-z0-9._-]*\).*/  fetching \1/p' \
                -e 's/^Processing .*\/\([A-Za-z0-9._]*\)-[0-9].*/  fetching \1/p' \
                -e 's/^Installing collected packages.*/  installing what was fetched/p' >&2
        return "${PIPESTATUS[0]}"
    fi
    "$VENV/bin/python" -m pip install "$@" >>"$log" 2>&1
}

# One stamp per installed set: running needs the project alone, the tests its dev extras too.
# A change of pyproject.toml or constraints.txt installs again.
inputs=$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
if [ "$with_tests" = 1 ]; then
    wanted=("$VENV/.installed-$inputs-dev")
    target=".[dev]" what="the project, its dependencies and its dev extras"
else
    wanted=("$VENV/.installed-$inputs-run" "$VENV/.installed-$inputs-dev")
    target="." what="the project and its dependencies"
fi
if [ ! -f "${wanted[0]}" ] && [ ! -f "${wanted[1]:-/nonexistent}" ]; then
    say "installing $what into $VENV at the tested versions (constraints.txt);"
    say "  up to a minute or two the first time; pip's log: $log"
    started=$SECONDS
    : >"$log"
    { pip_install --upgrade pip && pip_install -c constraints.txt -e "$target"; } \
        || { cat "$log" >&2; say "pip install failed (log above)"; exit 1; }
    rm -f "$VENV"/.installed-*
    touch "${wanted[0]}"
    say "installed in $((SECONDS - started)) s"
fi

# Front-end parts (JavaScript client, dashboard bundle, browser for tests) install themselves.
if [ -f scripts/bootstrap-js.sh ]; then
    bash scripts/bootstrap-js.sh "$@"
fi
