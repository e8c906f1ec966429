#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite
# (unit, integration against real server processes, interop with upstream peers).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/tstorage_client -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --with-test-deps
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
