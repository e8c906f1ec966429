#!/usr/bin/env bash
# The run command: installs what running needs (not the test tools), saying what it
# installs, then starts the gateway on the embedded TStorage with the example config
# (extra arguments go to `gateway run`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/gateway run --config config/gateway.toml "$@"
