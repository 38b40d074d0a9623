#!/usr/bin/env bash
# The fast conformance check of CI: the ETSI NGSI-LD suite's suites of entities,
# attributes, batch operations, consumption, discovery, temporal data and @context
# management, against the
# debug binary the tests built, compared with tests/conformance/passing.txt, the cases that pass today. A case of
# that list that fails is a regression and fails the check; a case that newly passes
# is printed, to be added to the list (`--update` rewrites it).
#
# The suite is the archive beside the project (../shared/conformance, or the directory
# $ETSI_ARCHIVE_DIR names); it is unpacked once into $ETSI_DIR (default
# target/etsi-suite) with its Python requirements from PyPI in a venv there. Its own
# @context documents are served on loopback: nothing is fetched from the Internet
# (the cases that need it are not in the list). The full, documented run, suite by
# suite with the table of docs/conformance.md, is scripts/conformance.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
UPDATE=${1:-}
ARCHIVE_DIR=${ETSI_ARCHIVE_DIR:-}
if [ -z "$ARCHIVE_DIR" ]; then
    for d in ../shared/conformance /work/shared/conformance; do
        if ls "$d"/ngsi-ld-test-suite-*.tar.gz >/dev/null 2>&1; then ARCHIVE_DIR=$d; break; fi
    done
fi
ARCHIVE=$(ls "$ARCHIVE_DIR"/ngsi-ld-test-suite-*.tar.gz 2>/dev/null | head -1 || true)
[ -n "$ARCHIVE" ] || { echo "conformance: no ETSI suite archive (set ETSI_ARCHIVE_DIR)" >&2; exit 2; }
W=${ETSI_DIR:-$ROOT/target/etsi-suite}
CTXPORT=${CTXPORT:-8098}
if [ ! -f "$W/.ready" ]; then
    rm -rf "$W" && mkdir -p "$W"
    tar xzf "$ARCHIVE" -C "$W" --strip-components=1
    python3 -m venv "$W/.venv"
    "$W/.venv/bin/pip" install -q -r "$W/requirements.txt" >/dev/null
    grep -rl 'forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/' "$W/data" "$W/resources" "$W/TP" |
        xargs -r sed -i "s#https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/#http://127.0.0.1:$CTXPORT/#g"
    touch "$W/.ready"
fi

BIN=${DOTHI_BIN:-$ROOT/target/debug/dothi}
[ -x "$BIN" ] || cargo build -q -p dothi --locked
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
DATA=$(mktemp -d)
OUT=$ROOT/target/etsi-ci
rm -rf "$OUT" && mkdir -p "$OUT"
# The temporal pagination cases (020_13, 020_14, 021_15, 021_16) assume a page of fewer
# than 20 instances of an attribute and more than 5 (the suite's README: "configure your
# broker accordingly"); clause 6.3.10 leaves the page to the server, dothi's is 1,000
# unless set. 10 here, or $DOTHI_TEMPORAL_PAGE_INSTANCES.
export DOTHI_TEMPORAL_PAGE_INSTANCES=${DOTHI_TEMPORAL_PAGE_INSTANCES:-10}
"$BIN" serve --listen "127.0.0.1:$PORT" --store "sqlite://$DATA/dothi.db" --insecure >"$OUT/server.log" 2>&1 &
SERVER=$!
(cd "$W/resources/jsonld-contexts" && exec python3 -m http.server "$CTXPORT" --bind 127.0.0.1 >/dev/null 2>&1) &
CONTEXTS=$!
trap 'kill $SERVER $CONTEXTS 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.3; done

# Folders under TP/NGSI-LD/ContextInformation/ (or, when none is there, under
# TP/NGSI-LD/: jsonldContext): by default the ones that run in about a minute; the
# subscription suite waits for notifications and takes over three, so it is named when
# wanted: ETSI_SUITES="Subscription" (space-separated folders).
read -r -a SUITES <<<"${ETSI_SUITES:-Provision/Entities Provision/EntityAttributes Provision/BatchEntities Consumption/Entity Consumption/Discovery Provision/TemporalEntity Provision/TemporalEntityAttributes Consumption/TemporalEntity jsonldContext}"
PATHS=()
for s in "${SUITES[@]}"; do
    if [ -d "$W/TP/NGSI-LD/ContextInformation/$s" ]; then PATHS+=("TP/NGSI-LD/ContextInformation/$s"); else PATHS+=("TP/NGSI-LD/$s"); fi
done
# The MQTT notification cases publish through the broker at $ETSI_MQTT_HOST (port 1883; the
# suite would start one in docker, which this runner does not use).
MQTT_HOST=${ETSI_MQTT_HOST:-127.0.0.1}
# The @context server some @context management cases start, on loopback (the suite's
# default, 0.0.0.0, is an address the hub never connects to).
CONTEXT_SERVER_PORT=${ETSI_CONTEXT_SERVER_PORT:-8087}
started=$(date +%s)
(cd "$W" && . .venv/bin/activate && timeout 600 robot --outputdir "$OUT" --loglevel NONE --console none \
    --variable "url:http://127.0.0.1:$PORT/ngsi-ld/v1" --variable "temporal_api_url:http://127.0.0.1:$PORT/ngsi-ld/v1" \
    --variable notification_server_host:127.0.0.1 --variable "mqtt_broker_host:$MQTT_HOST" \
    --variable context_server_host:127.0.0.1 --variable "context_server_port:$CONTEXT_SERVER_PORT" \
    --variable "ngsild_test_suite_context:http://127.0.0.1:$CTXPORT/ngsi-ld-test-suite-compound.jsonld" \
    "${PATHS[@]}" >"$OUT/robot.out" 2>&1) || true
echo "conformance: the suites ran in $(($(date +%s) - started)) s" >&2

python3 - "$OUT/output.xml" tests/conformance/passing.txt "$UPDATE" "${SUITES[@]}" <<'PY'
import sys, pathlib, xml.etree.ElementTree as ET
output, listed, update, suites = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3] == '--update', sys.argv[4:]
MARK = '/TP/NGSI-LD/'

def group(source):
    """The suite folder (one of `suites`) a robot file belongs to."""
    rest = source.split(MARK, 1)[-1]
    rest = rest.removeprefix('ContextInformation/')
    return next((s for s in suites if rest.startswith(s + '/')), rest)

results = {}
def walk(suite, source):
    source = suite.get('source') or source
    for child in suite:
        if child.tag == 'suite':
            walk(child, source)
        elif child.tag == 'test':
            ok = child.find('status').get('status') == 'PASS'
            results[f"{group(source)}: {child.get('name')}"] = ok
root = ET.parse(output).getroot()
for top in root.findall('suite'):
    walk(top, '')
ran = lambda line: line.split(': ', 1)[0] in suites
kept = [l for l in (listed.read_text().splitlines() if listed.exists() else []) if l.strip() and not ran(l)]
passing = sorted(n for n, ok in results.items() if ok)
print(f'conformance: {len(passing)} of {len(results)} cases pass')
for s in suites:
    cases = [ok for n, ok in results.items() if n.split(': ', 1)[0] == s]
    print(f'  {s}: {sum(cases)} of {len(cases)}')
if update:
    listed.write_text(''.join(f'{n}\n' for n in sorted(kept + passing)))
    print(f'{listed} rewritten')
    sys.exit(0)
expected = [l for l in listed.read_text().splitlines() if l.strip() and ran(l)]
regressed = [n for n in expected if not results.get(n, False)]
for n in sorted(set(passing) - set(expected)):
    print(f'  newly passing (add it with --update): {n}')
for n in regressed:
    print(f'  REGRESSED: {n}')
sys.exit(1 if regressed else 0)
PY
