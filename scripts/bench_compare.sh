#!/usr/bin/env bash
# bench_compare.sh - the pipeline's throughput and peak RSS side by side: this checkout's
# build/cdcflow against the one of another revision (built in a temporary worktree), on the same
# Debezium events, runs alternating so that the machine's load falls on both alike.
#   scripts/bench_compare.sh REV [EVENTS]      e.g. scripts/bench_compare.sh HEAD~10 500000
# Prints figures only; never fails on speed.
set -u
cd "$(dirname "$0")/.."
rev=${1:?usage: scripts/bench_compare.sh REV [EVENTS]}
N=${2:-500000}
ROUNDS=${ROUNDS:-2}
out=$(mktemp -d /tmp/cdcflow-compare.XXXXXX)
trap 'git worktree remove --force "$out/base" >/dev/null 2>&1; rm -rf "$out"' EXIT
make -s -j2 all >/dev/null || exit 1
git worktree add -q --detach "$out/base" "$rev" || exit 1
echo "building $rev ..."
make -s -C "$out/base" -j2 all >/dev/null 2>&1 || { echo "bench_compare: $rev does not build"; exit 1; }
python3 bench/customer_events.py "$out/events.jsonl" "$N"
echo "$N events (10% updates, 5% deletes), file source, --available-now; base = $rev, this = $(git rev-parse --short HEAD)"
for round in $(seq "$ROUNDS"); do
    for kind in delta iceberg; do
        for mode in append upsert; do
            for who in base this; do
                bin=build/cdcflow
                [ "$who" = base ] && bin=$out/base/build/cdcflow
                t=$out/t-$who-$kind-$mode-$round
                if [ "$kind" = delta ]; then loc=(--table-path "$t"); else loc=(--warehouse "$t" --namespace a --table c); fi
                s=$(date +%s.%N)
                /usr/bin/time -f "%M" -o "$out/rss" "$bin" "$kind" --source "file:$out/events.jsonl" --available-now \
                    --mode "$mode" "${loc[@]}" --metrics-port 0 --checkpoint-location "$out/ck-$who-$kind-$mode-$round" \
                    --max-offsets-per-trigger 100000 --log-level warn >/dev/null 2>&1
                rc=$?
                e=$(date +%s.%N)
                awk -v w="$who" -v k="$kind" -v m="$mode" -v n="$N" -v s="$s" -v e="$e" -v rss="$(cat "$out/rss")" \
                    -v rc="$rc" -v r="$round" 'BEGIN {
                        if (rc) { printf "round %d %-7s %-6s %-4s: failed (exit %d)\n", r, k, m, w, rc; exit }
                        printf "round %d %-7s %-6s %-4s: %.2f s, %.0f events/s, peak RSS %d MiB\n",
                               r, k, m, w, e - s, n / (e - s), rss / 1024 }'
                rm -rf "$t"
            done
        done
    done
done
