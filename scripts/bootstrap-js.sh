#!/usr/bin/env bash
# Front-end parts, idempotently: the JavaScript client's packages (js/), the dashboard's
# packages and its bundle (gateway/dashboard/dist/, served by the gateway at /), and with
# --with-test-deps also the browser-test packages (tests/browser/) and Debian's chromium.
# Called by scripts/bootstrap.sh with its arguments, and by setup.py's build hook when a wheel
# or an sdist is built. Says what it does; fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--with-test-deps" ] && with_tests=1

if [ "$with_tests" = 1 ] && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "bootstrap-js: installing chromium (apt-get)" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "bootstrap-js: please install Debian's chromium (needs root); browser tests need /usr/bin/chromium" >&2
    fi
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap-js: node/npm not found: the dashboard is not built and the JS tests cannot run" >&2
    exit 0
fi

# `npm ci` from the committed lock file, only when the lock changed since the last install.
npm_ci() {
    local dir=$1 stamp
    stamp="$dir/node_modules/.ci-$(sha1sum "$dir/package-lock.json" | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        echo "bootstrap-js: installing the npm packages of $dir (npm ci)" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
            || { echo "bootstrap-js: npm ci failed in $dir" >&2; exit 1; }
        rm -f "$dir"/node_modules/.ci-*
        touch "$stamp"
    fi
}

npm_ci js
npm_ci gateway/dashboard
[ "$with_tests" = 1 ] && npm_ci tests/browser

# Rebuild the bundle when its sources (or the client it includes) changed.
sources=$(cat gateway/dashboard/build.mjs gateway/dashboard/package-lock.json \
    gateway/dashboard/src/* js/src/* js/package-lock.json | sha1sum | cut -c1-12)
if [ ! -f "gateway/dashboard/dist/.built-$sources" ]; then
    echo "bootstrap-js: building the dashboard into gateway/dashboard/dist/" >&2
    node gateway/dashboard/build.mjs >/dev/null \
        || { echo "bootstrap-js: building the dashboard failed" >&2; exit 1; }
    touch "gateway/dashboard/dist/.built-$sources"
fi
