#!/usr/bin/env bash
# state.sh - the total_orders state at 1M customers and 10M orders (STATE_CUSTOMERS,
# STATE_ORDERS, in commits of STATE_BATCH orders), then small commits over it (STATE_SMALL
# re-assignments each): bytes per key, state file size, fold/write/load time, peak RSS.
# Figures only; nothing here passes or fails on speed.
set -eu
cd "$(dirname "$0")/.."
make -s -j2 build/bench/bench_state >/dev/null
out=$(mktemp -d /tmp/cdcflow-bench-state.XXXXXX)
trap 'rm -rf "$out"' EXIT
build/bench/bench_state "${STATE_CUSTOMERS:-1000000}" "${STATE_ORDERS:-10000000}" "${STATE_BATCH:-1000000}" "$out" "${STATE_SMALL:-10000}"
echo "state files left: $(ls "$out/_cdcflow_state" | wc -l) ($(du -sh "$out/_cdcflow_state" | cut -f1))"
