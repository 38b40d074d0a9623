#!/usr/bin/env bash
# Runs every test of dothi. Installs and starts what the tests need on this machine
# when it is missing: the MQTT broker of the IoT agent's tests (Mosquitto on
# 127.0.0.1:1883), PostGIS for the PostgreSQL store's tests (the server itself,
# 127.0.0.1:5432 or DOTHI_TEST_DATABASE_URL, is the machine's; its tests fail, saying
# so, without it), Node.js/npm to build the web app, and Chromium for its browser
# tests (Debian's, at /usr/bin/chromium; no browser is ever downloaded otherwise).
# The hub's HTTP API tests, the authorization matrix and the tenant isolation
# property run twice: on SQLite, then on PostgreSQL.
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

# PostGIS for every PostgreSQL installed here (the store's first migration creates
# the extension).
if command -v apt-get >/dev/null; then
    for dir in /usr/lib/postgresql/*/; do
        [ -d "$dir" ] || continue
        version=$(basename "$dir")
        if ! ls /usr/share/postgresql/"$version"/extension/postgis.control >/dev/null 2>&1; then
            echo "installing PostGIS for PostgreSQL $version" >&2
            apt-get install -y -q "postgresql-$version-postgis-3" >/dev/null 2>&1 ||
                { apt-get update -q >/dev/null && apt-get install -y -q "postgresql-$version-postgis-3" >/dev/null; }
        fi
    done
fi

# Nothing is skipped here: the PostgreSQL tests get their server, and the web app
# must be built (the crate would otherwise embed a placeholder page).
export DOTHI_TEST_DATABASE_URL=${DOTHI_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export DOTHI_WEB_REQUIRED=1
[ web/node_modules/.package-lock.json -nt web/package-lock.json ] ||
    (cd web && npm ci --no-audit --no-fund --loglevel=error)

cargo test --workspace --locked "$@"
DOTHI_TEST_STORE=postgres cargo test -p hub --test api --locked "$@"
# The authorization matrix and the tenant isolation property, on PostgreSQL too.
DOTHI_TEST_STORE=postgres cargo test -p dothi --test authz --test isolation --locked "$@"

# Databases of tests that restart a hub at the same path (or that were stopped before
# their end) are left behind: drop them.
if command -v psql >/dev/null; then
    url=${DOTHI_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    psql "$url" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'dothi\_test\_api\_%' OR datname LIKE 'dothi\_test\_nodes\_%'" 2>/dev/null |
        while read -r db; do
            [ -n "$db" ] && psql "$url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
        done
fi

# The web app in a real browser, against a real `dothi demo` (the debug binary).
echo "== browser tests (web/tests, headless Chromium)" >&2
cargo build -p dothi --locked
DOTHI_BIN="$PWD/target/debug/dothi" node --test --test-concurrency=1 web/tests/*.test.mjs
