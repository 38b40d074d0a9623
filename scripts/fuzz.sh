#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for a while each, and prints
# each one's executions and whether it found a crash. Needs the nightly toolchain and
# cargo-fuzz (`cargo +nightly install cargo-fuzz`). A crash leaves its input in
# fuzz/artifacts/<target>/: replay it with `cargo +nightly fuzz run <target> <file>`,
# fix the code, and add the input to a test.
#   scripts/fuzz.sh [SECONDS] [TARGET...]   (default: 60 s each, every target)
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && mapfile -t targets < <(cargo +nightly fuzz list)
status=0
for t in "${targets[@]}"; do
    log=$(mktemp)
    cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1
    code=$?
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
    if [ $code -eq 0 ]; then
        echo "$t: ${runs:-?} executions in ${seconds} s, no crash"
    else
        status=1
        echo "$t: CRASH (exit $code), input in fuzz/artifacts/$t/"
        grep -E "panicked|ERROR: libFuzzer|SUMMARY" "$log" | head -5
    fi
    rm -f "$log"
done
exit $status
