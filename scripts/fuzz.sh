#!/usr/bin/env bash
# fuzz.sh - run each libFuzzer target in build/fuzz for N seconds (default 60)
# with its seed corpus from tests/data/fuzz/<name>/ when present.
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
rc=0
for f in build/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus=var/fuzz/$name; mkdir -p "$corpus"
    seeds=tests/data/fuzz/${name#fuzz_}
    echo "== $name (${secs}s)"
    if "$f" -max_total_time="$secs" -max_len=65536 -print_final_stats=1 "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) \
        > "var/fuzz/$name.log" 2>&1; then
        grep -E 'stat::number_of_executed_units|Done' "var/fuzz/$name.log" | tail -2
    else
        echo "$name: FAILED, see var/fuzz/$name.log"; tail -30 "var/fuzz/$name.log"; rc=1
    fi
done
exit $rc
