#!/usr/bin/env bash
# Runs the ETSI NGSI-LD conformance suite (GS CIM 014) suite by suite with the runner
# shipped beside the project (../shared/conformance/run-etsi.sh, or $ETSI_RUNNER), and
# writes the table of docs/conformance.md between its markers: passed, failed and the
# failing cases of each suite. The notes around the table are kept as written.
#   scripts/conformance.sh            every suite below
#   scripts/conformance.sh SUITE...   only these (folders under TP/NGSI-LD/)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNNER=${ETSI_RUNNER:-../shared/conformance/run-etsi.sh}
[ -x "$RUNNER" ] || { echo "no conformance runner at $RUNNER (set ETSI_RUNNER)" >&2; exit 2; }
SUITES=("$@")
[ ${#SUITES[@]} -eq 0 ] && SUITES=(
  ContextInformation/Provision/Entities
  ContextInformation/Provision/EntityAttributes
  ContextInformation/Provision/BatchEntities
  ContextInformation/Consumption/Entity
  ContextInformation/Consumption/Discovery
  ContextInformation/Provision/TemporalEntity
  ContextInformation/Provision/TemporalEntityAttributes
  ContextInformation/Consumption/TemporalEntity
  ContextInformation/Subscription
  jsonldContext
)
# The runner's server takes its temporal page from the environment: the suite's
# pagination cases assume a page of fewer than 20 instances of an attribute (see
# scripts/conformance-ci.sh).
export DOTHI_TEMPORAL_PAGE_INSTANCES=${DOTHI_TEMPORAL_PAGE_INSTANCES:-10}
OUT=target/conformance
mkdir -p "$OUT"
for suite in "${SUITES[@]}"; do
  name=$(echo "$suite" | tr '/' '_')
  echo "== $suite" >&2
  "$RUNNER" "TP/NGSI-LD/$suite" >"$OUT/$name.txt" 2>&1 || true
  tail -1 "$OUT/$name.txt" >&2
done
python3 - "$OUT" "${SUITES[@]}" <<'PY'
import re, sys, pathlib, datetime, subprocess
out, suites = pathlib.Path(sys.argv[1]), sys.argv[2:]
rows, fails, tp, tf = [], [], 0, 0
for suite in suites:
    text = (out / (suite.replace('/', '_') + '.txt')).read_text(errors='replace')
    m = re.search(r'^(\d+) passed, (\d+) failed$', text, re.M)
    p, f = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    tp, tf = tp + p, tf + f
    share = f"{100 * p / (p + f):.1f}%" if p + f else "no result"
    rows.append(f"| {suite} | {p} | {f} | {share} |")
    cases = [l[5:] for l in text.splitlines() if l.startswith('FAIL ')]
    if cases:
        fails.append(f"\n**{suite}**\n")
        fails += [f"- {c[:240]}" for c in cases]
commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
table = [
    f"Measured {datetime.date.today()} at commit {commit} with `scripts/conformance.sh`.",
    "",
    "| suite (TP/NGSI-LD/…) | passed | failed | passed share |",
    "| --- | ---: | ---: | ---: |",
    *rows,
    f"| **all** | **{tp}** | **{tf}** | **{100 * tp / max(tp + tf, 1):.1f}%** |",
    "",
    "### Failing cases",
    *fails,
]
doc = pathlib.Path('docs/conformance.md')
text = doc.read_text()
start, end = '<!-- table: begin -->', '<!-- table: end -->'
a, b = text.index(start) + len(start), text.index(end)
doc.write_text(text[:a] + "\n" + "\n".join(table) + "\n" + text[b:])
print(f"{tp} passed, {tf} failed; docs/conformance.md written")
PY
