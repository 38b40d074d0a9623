#!/usr/bin/env bash
# Runs every test of dothi. Installs and starts what the tests need on this machine
# when it is missing: today the MQTT broker of the IoT agent's tests (Mosquitto on
# 127.0.0.1:1883); later PostgreSQL/PostGIS and Chromium, as the components that need
# them land.
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

cargo test --workspace --locked "$@"
