#!/usr/bin/env bash
# pipeline.sh - the runtime loop's throughput and peak RSS: file source ->
# decode -> transform -> null sink on generated Debezium events, then the same
# file into a real Delta table, then Kafka -> Delta when the local stack is up.
# Prints figures; never fails on speed.
set -u
cd "$(dirname "$0")/.."
make -s -j2 all build/bench/bench_pipeline >/dev/null || exit 1
N=${PIPELINE_BENCH_EVENTS:-1000000}
KN=${PIPELINE_BENCH_KAFKA_EVENTS:-300000}
out=$(mktemp -d /tmp/cdcflow-bench-pipeline.XXXXXX)
trap 'rm -rf "$out"' EXIT

# 1. The loop alone (rows dropped at the sink).
build/bench/bench_pipeline run "$N" || exit 1

# Time a cdcflow run: prints "<label>: N events in S s = E events/s, peak RSS M MB".
timed() {
    local label=$1 events=$2; shift 2
    local t0 t1 rss
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$out/rss" "$@" 2>"$out/log" || { echo "$label: failed"; tail -5 "$out/log"; return 1; }
    t1=$(date +%s.%N)
    rss=$(tail -n1 "$out/rss")
    awk -v l="$label" -v n="$events" -v a="$t0" -v b="$t1" -v r="$rss" \
        'BEGIN { s = b - a; printf "%s: %d events in %.2f s = %.0f events/s, peak RSS %.1f MB\n", l, n, s, n / s, r / 1024 }'
}

# 2. File -> Delta (zstd Parquet, one commit per 100000 events).
build/bench/bench_pipeline gen "$N" "$out/events.jsonl" || exit 1
timed "pipeline file->delta (append)" "$N" \
    build/cdcflow delta --source "file:$out/events.jsonl" --table-path "$out/delta" --dlq off \
    --metrics-port 0 --checkpoint-location "$out/state"
rm -rf "$out/delta" "$out/events.jsonl"

# 3. Kafka -> Delta on the local stack, when it runs.
if scripts/stack.sh status >/dev/null 2>&1; then
    topic="cdcflow-bench-$$-$(date +%s)"
    build/bench/bench_pipeline produce "$KN" "$topic" 127.0.0.1:9092 || exit 1
    timed "pipeline kafka->delta (append, available-now)" "$KN" \
        build/cdcflow delta --available-now --bootstrap 127.0.0.1:9092 --topic "$topic" \
        --table-path "$out/kdelta" --dlq off --metrics-port 0 --group-id "$topic"
    # Leave no bench topic behind.
    if [ -x .venv/bin/python ]; then
        .venv/bin/python - "$topic" <<'PY' || echo "note: could not delete topic $topic"
import sys
from confluent_kafka.admin import AdminClient
topic = sys.argv[1]
admin = AdminClient({"bootstrap.servers": "127.0.0.1:9092"})   # must outlive the future
admin.delete_topics([topic], operation_timeout=30)[topic].result(60)
PY
    fi
else
    echo "pipeline kafka->delta: skipped (local stack down: scripts/stack.sh start)"
fi
