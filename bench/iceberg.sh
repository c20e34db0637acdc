#!/usr/bin/env bash
# iceberg.sh - Iceberg sink throughput and peak RSS through the whole pipeline
# (cdcflow iceberg --source file: : decode + transform + Parquet + manifests +
# commit), append and upsert (10% updates, 5% deletes), plus optimize.
# Prints figures; never fails on speed.
set -u
cd "$(dirname "$0")/.."
make -s -j2 all >/dev/null || exit 1
out=$(mktemp -d /tmp/cdcflow-bench-iceberg.XXXXXX)
trap 'rm -rf "$out"' EXIT
N=${ICEBERG_BENCH_EVENTS:-500000}
BATCH=${ICEBERG_BENCH_BATCH:-100000}

python3 bench/customer_events.py "$out/events.jsonl" "$N" --seed 7 --lsn-start 5000 --lsn-step 2 --vary
echo "-- cdcflow iceberg --source file: ($N events, batches of $BATCH)"
for mode in append upsert; do
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$out/rss" build/cdcflow iceberg --source "file:$out/events.jsonl" --available-now \
        --mode "$mode" --warehouse "$out/wh" --namespace bench --table "$mode" --metrics-port 0 \
        --checkpoint-location "$out/ck-$mode" --max-offsets-per-trigger "$BATCH" --log-level warn >/dev/null 2>&1
    rc=$?
    end=$(date +%s.%N)
    awk -v m="$mode" -v n="$N" -v s="$start" -v e="$end" -v rss="$(cat "$out/rss")" -v rc="$rc" \
        'BEGIN { if (rc) { printf "pipeline %s: failed (exit %d)\n", m, rc; exit }
                 printf "pipeline %s: %d events in %.2f s, %.0f events/s, peak RSS %d MiB\n", m, n, e - s, n / (e - s), rss / 1024 }'
done
rows=$(build/cdcflow scan "$out/wh/bench/upsert" --format csv --columns customer_id | tail -n +2 | wc -l)
echo "upsert table: $rows live rows"
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$out/rss" build/cdcflow optimize "$out/wh/bench/upsert" >/dev/null
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v rss="$(cat "$out/rss")" -v r="$rows" \
    'BEGIN { printf "optimize upsert table (fold position deletes): %.2f s, %.0f rows/s, peak RSS %d MiB\n", e - s, r / (e - s), rss / 1024 }'
# Small batches as SYSTEM.md's Spark job used (maxOffsetsPerTrigger 1000): commit cost dominates.
SMALL=${ICEBERG_BENCH_SMALL_EVENTS:-200000}
head -n "$SMALL" "$out/events.jsonl" > "$out/small.jsonl"
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$out/rss" build/cdcflow iceberg --source "file:$out/small.jsonl" --available-now \
    --mode upsert --warehouse "$out/wh" --namespace bench --table small --metrics-port 0 \
    --checkpoint-location "$out/ck-small" --max-offsets-per-trigger 1000 --log-level warn >/dev/null 2>&1
rc=$?
end=$(date +%s.%N)
commits=$(build/cdcflow history "$out/wh/bench/small" 2>/dev/null | tail -n +2 | wc -l)
awk -v n="$SMALL" -v s="$start" -v e="$end" -v rss="$(cat "$out/rss")" -v rc="$rc" -v c="$commits" \
    'BEGIN { if (rc) { printf "pipeline upsert, batches of 1000: failed (exit %d)\n", rc; exit }
             printf "pipeline upsert, batches of 1000: %d events in %.2f s, %.0f events/s, %d commits (%.1f ms each), peak RSS %d MiB\n",
                    n, e - s, n / (e - s), c, (e - s) * 1000 / c, rss / 1024 }'
# The same stream with a bounded history (history.expire.*: keep the 10 newest): the
# metadata JSON stays the same size however long the stream runs.
run_small() {
    build/cdcflow iceberg --source "file:$1" --available-now --mode upsert --warehouse "$out/wh" \
        --namespace bench --table bounded --metrics-port 0 --checkpoint-location "$out/ck-bounded" \
        --max-offsets-per-trigger 1000 --log-level warn >/dev/null 2>&1
}
head -n 1000 "$out/small.jsonl" > "$out/first.jsonl"
run_small "$out/first.jsonl" &&
    build/cdcflow expire-snapshots "$out/wh/bench/bounded" --older-than 0s --retain-last 10 --save-policy >/dev/null &&
    start=$(date +%s.%N) && run_small "$out/small.jsonl"
rc=$?
end=$(date +%s.%N)
meta_kib() { local d="$1/metadata"; echo $(( $(stat -c %s "$d/v$(cat "$d/version-hint.text").metadata.json") / 1024 )); }
if [ $rc -eq 0 ]; then
    awk -v s="$start" -v e="$end" -v c="$commits" -v a="$(meta_kib "$out/wh/bench/small")" \
        -v b="$(meta_kib "$out/wh/bench/bounded")" -v k="$(build/cdcflow history "$out/wh/bench/bounded" | tail -n +2 | wc -l)" \
        'BEGIN { printf "bounded history, batches of 1000: %.2f s for %d commits (%.1f ms each); metadata %d KiB with every snapshot, %d KiB keeping %d\n",
                        e - s, c - 1, (e - s) * 1000 / (c - 1), a, b, k }'
else
    echo "bounded history: failed (exit $rc)"
fi
