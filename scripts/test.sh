#!/usr/bin/env bash
# Runs every test of dothi. Installs and starts what the tests need on this machine
# when it is missing (today: nothing beyond a Rust toolchain; later PostgreSQL/PostGIS,
# Mosquitto and Chromium, as the components that need them land).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked "$@"
