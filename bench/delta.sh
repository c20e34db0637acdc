#!/usr/bin/env bash
# delta.sh - Delta sink throughput and peak RSS: append and upsert (10% updates,
# 5% deletes) from synthetic batches, then the whole pipeline from a file of
# Debezium events.  Prints figures; never fails on speed.
set -u
cd "$(dirname "$0")/.."
make -s -j2 all build/bench/bench_delta >/dev/null || exit 1
out=$(mktemp -d /tmp/cdcflow-bench-delta.XXXXXX)
trap 'rm -rf "$out"' EXIT
N=${DELTA_BENCH_EVENTS:-500000}

echo "-- sink only (batches of 100000 rows, customers-shaped)"
build/bench/bench_delta gen --out "$out/append" --mode append --events "$N" --batch 100000
build/bench/bench_delta gen --out "$out/upsert" --mode upsert --events "$N" --batch 100000 2>/dev/null

echo "-- whole pipeline: cdcflow delta --source file: (decode + transform + sink)"
python3 bench/customer_events.py "$out/events.jsonl" "$N"
for mode in append upsert; do
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$out/rss" build/cdcflow delta --source "file:$out/events.jsonl" --available-now \
        --mode "$mode" --table-path "$out/p-$mode" --metrics-port 0 --checkpoint-location "$out/ck-$mode" \
        --max-offsets-per-trigger 100000 --log-level warn >/dev/null 2>&1
    rc=$?
    end=$(date +%s.%N)
    awk -v m="$mode" -v n="$N" -v s="$start" -v e="$end" -v rss="$(cat "$out/rss")" -v rc="$rc" \
        'BEGIN { if (rc) { printf "pipeline %s: failed (exit %d)\n", m, rc; exit }
                 printf "pipeline %s: %d events in %.2f s, %.0f events/s, peak RSS %d MiB\n", m, n, e - s, n / (e - s), rss / 1024 }'
    key=numOutputRows; [ "$mode" = upsert ] && key=numSourceRows
    build/cdcflow history "$out/p-$mode" --format jsonl | grep -o "\"$key\":\"[0-9]*\"" | tr -dc '0-9\n' |
        awk '{ t += $1 } END { printf "  (events committed per the table history: %d)\n", t }'
done

echo "-- whole pipeline from Kafka (127.0.0.1:9092): the same events in a fresh topic"
if ! (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
    echo "kafka: not running (scripts/stack.sh start), skipped"
    exit 0
fi
topic="cdcflow-bench-delta-$$"
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
"$PY" - "$out/events.jsonl" "$topic" <<'PY' || { echo "kafka: producing failed"; exit 0; }
import sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
path, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": "127.0.0.1:9092"})
admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
p = Producer({"bootstrap.servers": "127.0.0.1:9092", "linger.ms": 50, "batch.num.messages": 10000,
              "compression.type": "lz4", "queue.buffering.max.messages": 1000000})
with open(path, "rb") as f:
    for line in f:
        while True:
            try:
                p.produce(topic, line.rstrip(b"\n"))
                break
            except BufferError:
                p.poll(0.1)
p.flush()
PY
for mode in append upsert; do
    start=$(date +%s.%N)
    timeout 120 /usr/bin/time -f "%M" -o "$out/rss" build/cdcflow delta --bootstrap 127.0.0.1:9092 \
        --topic "$topic" --available-now --mode "$mode" --table-path "$out/k-$mode" --metrics-port 0 \
        --checkpoint-location "$out/kck-$mode" --group-id "$topic-$mode" \
        --max-offsets-per-trigger 100000 --log-level warn >/dev/null 2>"$out/err"
    rc=$?
    end=$(date +%s.%N)
    awk -v m="$mode" -v n="$N" -v s="$start" -v e="$end" -v rss="$(cat "$out/rss")" -v rc="$rc" \
        'BEGIN { if (rc) { printf "kafka %s: failed (exit %d)\n", m, rc; system("tail -3 '"$out/err"'"); exit }
                 printf "kafka %s: %d events in %.2f s, %.0f events/s, peak RSS %d MiB\n", m, n, e - s, n / (e - s), rss / 1024 }'
done
"$PY" -c "
from confluent_kafka.admin import AdminClient
a = AdminClient({'bootstrap.servers': '127.0.0.1:9092'})
a.delete_topics(['$topic'])['$topic'].result()" 2>/dev/null
