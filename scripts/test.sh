#!/usr/bin/env bash
# Runs every test of dothi. Installs and starts what the tests need on this machine
# when it is missing: the MQTT broker of the IoT agent's tests (Mosquitto on
# 127.0.0.1:1883), Node.js/npm to build the web app, and Chromium for its browser
# tests (Debian's, at /usr/bin/chromium; no browser is ever downloaded otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

broker_up() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
if ! broker_up; then
    if ! command -v mosquitto >/dev/null && command -v apt-get >/dev/null; then
        echo "installing Mosquitto for the IoT agent's tests" >&2
        apt-get install -y -q mosquitto >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y -q mosquitto >/dev/null; }
    fi
    if command -v mosquitto >/dev/null; then
        echo "starting Mosquitto on 127.0.0.1:1883" >&2
        if [ -f /etc/mosquitto/mosquitto.conf ]; then
            mosquitto -d -c /etc/mosquitto/mosquitto.conf
        else
            mosquitto -d
        fi
        for _ in $(seq 50); do broker_up && break; sleep 0.1; done
    fi
    broker_up || echo "no MQTT broker on 127.0.0.1:1883: the IoT agent's tests will fail" >&2
fi

install_debian() { # package...
    command -v apt-get >/dev/null || return 0
    apt-get install -y -q "$@" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
if ! command -v npm >/dev/null; then
    echo "installing Node.js and npm to build the web app" >&2
    install_debian nodejs npm
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "installing Chromium for the web app's browser tests" >&2
    install_debian chromium
fi

cargo test --workspace --locked "$@"

# The web app in a real browser, against a real `dothi demo` (the debug binary).
echo "== browser tests (web/tests, headless Chromium)" >&2
cargo build -p dothi --locked
(cd web && [ -d node_modules ] || npm ci --no-audit --no-fund)
DOTHI_BIN="$PWD/target/debug/dothi" node --test --test-concurrency=1 web/tests/*.test.mjs
