#!/usr/bin/env bash
# kafka.sh - what cdcflow costs over reading Kafka at all: a topic of Debezium customers events shaped
# like the stack's own (the schema block of a real postgres.public.customers event, bench/customers_event*.json,
# in every message; varying payloads: creates, then updates with full before images, deletes and their
# tombstones), read to the end by a bare librdkafka consumer (bench_kafka consume; kcat too when installed),
# then by `cdcflow delta` and `cdcflow iceberg --available-now` in append and upsert mode into empty local
# tables.  Then (unless BENCH_KAFKA_AVRO=0, or no schema registry answers) the same changes as Kafka
# Connect's AvroConverter writes them (bench_kafka produce-avro: Confluent framing, magic byte 0 + 4-byte
# schema id, the datum of bench/avro_events.h; tests/data/avro/2.avsc and 1.avsc registered as
# TOPIC-value / TOPIC-key, each id checked with GET /schemas/ids/ID; Avro keys): read by the bare
# consumer and by `cdcflow delta --value-format avro --schema-registry REG` in append and upsert mode;
# the append table must hold a row per message but the tombstones.  Prints a "--" line per topic
# (messages, bytes, average size; for Avro values, keys and tombstones apart) and one table, side by
# side for a 1-partition and a 4-partition topic: wall time, the ratio to the bare consumer (of the
# same topic: Avro rows, labelled "... avro", against "bare consumer, avro"), peak RSS and CPU
# seconds of each run.  Prints figures; never fails on speed; says so when a run did not read every
# message.  Needs the stack's Kafka (skipped when it is down); each topic and subject is named for
# this run and deleted afterwards.
#   make bench-kafka    BENCH_KAFKA_N (1000000 messages)  BENCH_KAFKA_PARTITIONS ("1 4")
#                       BENCH_KAFKA_BOOTSTRAP (127.0.0.1:9092)  BENCH_KAFKA_AVRO (1; 0 skips Avro)
#                       BENCH_KAFKA_REGISTRY (http://127.0.0.1:8085/apis/ccompat/v7)
# Not run by `make bench`: a million 4.7 KB messages take minutes to produce and read six times over
# (and the Avro topic, ~380 B a message, three more times).
set -u
cd "$(dirname "$0")/.."
N=${BENCH_KAFKA_N:-1000000}
PARTS=${BENCH_KAFKA_PARTITIONS:-1 4}
B=${BENCH_KAFKA_BOOTSTRAP:-127.0.0.1:9092}
AVRO=${BENCH_KAFKA_AVRO:-1}
REG=${BENCH_KAFKA_REGISTRY:-http://127.0.0.1:8085/apis/ccompat/v7}
if ! scripts/stack.sh status 2>/dev/null | grep -qE '^kafka +up'; then
    echo "bench-kafka: skipped (Kafka down: scripts/stack.sh start)"
    exit 0
fi
make -s -j2 all build/bench/bench_kafka >/dev/null || exit 1
tool=build/bench/bench_kafka
out=$(mktemp -d /tmp/cdcflow-bench-kafka.XXXXXX)
tag=$$-$(date +%s)
made=()
subjects=()
cleanup() {
    for t in ${made[@]+"${made[@]}"}; do
        [ -n "$t" ] || continue
        $tool delete "$t" "$B" || echo "bench-kafka: note: could not delete topic $t"
    done
    for s in ${subjects[@]+"${subjects[@]}"}; do
        curl -sf -o /dev/null -X DELETE "$REG/subjects/$s" &&
            curl -sf -o /dev/null -X DELETE "$REG/subjects/$s?permanent=true" ||
            echo "bench-kafka: note: could not delete subject $s"
    done
    rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One timed run: appends "PARTITIONS NAME WALL_S RSS_KB USER_S SYS_S RC" to $out/results.
timed() {
    local parts=$1 name=$2 t0 t1 rc
    shift 2
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M %U %S' -o "$out/time" "$@" >"$out/stdout" 2>"$out/log"
    rc=$?
    t1=$(date +%s.%N)
    if [ $rc -ne 0 ]; then
        echo "bench-kafka: $name ($parts partitions) failed (exit $rc):"
        tail -n 3 "$out/log" | cut -c1-300
    fi
    echo "$parts $name $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $(tail -n1 "$out/time") $rc" \
        >>"$out/results"
}

# Register an .avsc under a subject; prints the schema id once GET /schemas/ids/ID gives the schema back.
register() {
    local avsc=$1 subject=$2 id
    id=$(python3 -c 'import json, sys; print(json.dumps({"schema": open(sys.argv[1]).read().strip()}))' "$avsc" |
        curl -sSf -X POST -H 'Content-Type: application/vnd.schemaregistry.v1+json' --data-binary @- \
            "$REG/subjects/$subject/versions" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])') ||
        return 1
    curl -sSf "$REG/schemas/ids/$id" | python3 -c '
import json, sys
got, want = json.loads(json.load(sys.stdin)["schema"]), json.load(open(sys.argv[1]))
sys.exit(got["name"] != want["name"] or len(got["fields"]) != len(want["fields"]))' "$avsc" || {
        echo "bench-kafka: $REG/schemas/ids/$id is not $avsc" >&2
        return 1
    }
    echo "$id"
}
if [ "$AVRO" != 0 ] && ! curl -sf -o /dev/null "$REG/subjects"; then
    echo "bench-kafka: note: no schema registry at $REG: the Avro runs are skipped"
    AVRO=0
fi

have_kcat=0
command -v kcat >/dev/null && have_kcat=1
for p in $PARTS; do
    topic=cdcflow-bench-kafka-$tag-p$p
    $tool create "$topic" "$p" "$B" || exit 1
    made+=("$topic")
    t0=$(date +%s.%N)
    $tool produce "$N" "$topic" "$B" bench/customers_event.json bench/customers_event.key.json || exit 1
    t1=$(date +%s.%N)
    # The bare consumer also says how many bytes there are to read.
    timed "$p" bare "$tool" consume "$topic" "$B" "$topic-bare"
    read -r msgs bytes <"$out/stdout" || { msgs=0; bytes=0; }
    awk -v p="$p" -v n="$msgs" -v by="$bytes" -v a="$t0" -v b="$t1" 'BEGIN {
        printf "-- %d partition(s): %d messages, %.2f GB (%.0f B each, key included), produced in %.1f s\n",
               p, n, by / 1e9, n ? by / n : 0, b - a }'
    [ "$msgs" = "$N" ] || echo "bench-kafka: note: the bare consumer read $msgs of $N messages"
    if [ $have_kcat = 1 ]; then
        timed "$p" kcat kcat -q -b "$B" -G "$topic-kcat" -o beginning -e -f '%S\n' "$topic"
    fi
    for kind in delta iceberg; do
        for mode in append upsert; do
            name=$kind-$mode
            case $kind in
                delta)   loc=(--table-path "$out/$name") ;;
                iceberg) loc=(--warehouse "$out/wh" --namespace bench --table "${name//-/_}") ;;
            esac
            timed "$p" "$name" build/cdcflow "$kind" --available-now --bootstrap "$B" --topic "$topic" \
                --group-id "$topic-$name" "${loc[@]}" --mode "$mode" --dlq off --metrics-port 0 \
                --checkpoint-location "$out/ck-$name" --log-level info
            # Every message must have been read: the last line counts them.
            if ! grep -q "stopped cleanly: $N messages" "$out/log"; then
                echo "bench-kafka: $name ($p partitions): $(grep -o 'stopped.*' "$out/log" | tail -n1)"
            fi
            rm -rf "${out:?}/$name" "$out/wh" "$out/ck-$name"
        done
    done
    $tool delete "$topic" "$B" && made=("${made[@]/$topic}")

    # The same changes in Avro, as the AvroConverter writes them (Confluent framing, keys Avro too).
    [ "$AVRO" != 0 ] || continue
    topic=cdcflow-bench-kafka-$tag-p$p-avro
    $tool create "$topic" "$p" "$B" || exit 1
    made+=("$topic")
    subjects+=("$topic-value" "$topic-key")   # register runs in a subshell: its subjects are noted here
    sid=$(register tests/data/avro/2.avsc "$topic-value") || exit 1
    ksid=$(register tests/data/avro/1.avsc "$topic-key") || exit 1
    t0=$(date +%s.%N)
    read -r _ tombs vbytes kbytes < <($tool produce-avro "$N" "$topic" "$B" "$sid" "$ksid") || exit 1
    t1=$(date +%s.%N)
    timed "$p" bare-avro "$tool" consume "$topic" "$B" "$topic-bare"
    read -r msgs bytes <"$out/stdout" || { msgs=0; bytes=0; }
    awk -v p="$p" -v n="$msgs" -v by="$bytes" -v v="$vbytes" -v k="$kbytes" -v m="$N" -v t="$tombs" \
        -v a="$t0" -v b="$t1" -v s="$sid" -v ks="$ksid" 'BEGIN {
        printf "-- %d partition(s), Avro: %d messages, %.1f MB (%.0f B each, key included; values %.0f B, keys %.0f B; %d tombstones), schema ids %d and %d (key), produced in %.1f s\n",
               p, n, by / 1e6, n ? by / n : 0, (m > t) ? v / (m - t) : 0, m ? k / m : 0, t, s, ks, b - a }'
    [ "$msgs" = "$N" ] || echo "bench-kafka: note: the bare consumer read $msgs of $N Avro messages"
    for mode in append upsert; do
        name=delta-$mode-avro
        timed "$p" "$name" build/cdcflow delta --available-now --bootstrap "$B" --topic "$topic" \
            --group-id "$topic-$name" --table-path "$out/$name" --mode "$mode" --dlq off --metrics-port 0 \
            --checkpoint-location "$out/ck-$name" --log-level info \
            --value-format avro --key-format avro --schema-registry "$REG"
        if ! grep -q "stopped cleanly: $N messages" "$out/log"; then
            echo "bench-kafka: $name ($p partitions): $(grep -o 'stopped.*' "$out/log" | tail -n1)"
        fi
        # Append keeps one row per change: every message but the tombstones.
        if [ $mode = append ]; then
            rows=$(build/cdcflow scan "$out/$name" --format csv --columns customer_id | tail -n +2 | wc -l)
            [ "$rows" -eq $((N - tombs)) ] ||
                echo "bench-kafka: $name ($p partitions): $rows rows, not $((N - tombs)) ($N messages - $tombs tombstones)"
        fi
        rm -rf "${out:?}/$name" "$out/ck-$name"
    done
    $tool delete "$topic" "$B" && made=("${made[@]/$topic}")
done

python3 - "$out/results" "$N" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
runs, parts, names = {}, [], []
for line in open(path):
    p, name, wall, rss, user, sys_, rc = line.split()
    runs[(p, name)] = (float(wall), int(rss), float(user) + float(sys_), int(rc))
    if p not in parts:
        parts.append(p)
    if name not in names:
        names.append(name)
# kcat -e stops at an EOF event, which comes only after an empty fetch has waited fetch.wait.max.ms.
label = {"bare": "bare consumer (librdkafka)", "kcat": "kcat -G -e", "bare-avro": "bare consumer, avro"}
head = "".join(f" | {p + ' partition' + ('s' if p != '1' else ''):^34}" for p in parts)
print(f"{str(n) + ' messages':27}{head}")
print(f"{'run':27}" + " | wall s  x bare  peak RSS MB  CPU s" * len(parts))
for name in names:
    # Avro runs are measured against the bare consumer reading the Avro topic.
    avro = name.endswith("-avro")
    row = f"{label.get(name, 'cdcflow ' + name.replace('-avro', ' avro')):27}"
    for p in parts:
        r, bare = runs.get((p, name)), runs.get((p, "bare-avro" if avro else "bare"))
        if r is None:
            row += f" | {'-':^34}"
        elif r[3]:
            row += f" | {'failed (exit %d)' % r[3]:^34}"
        else:
            ratio = r[0] / bare[0] if bare and not bare[3] and bare[0] > 0 else float("nan")
            row += f" | {r[0]:6.2f}  {ratio:6.2f}  {r[1] / 1024:11.0f}  {r[2]:5.1f}"
    print(row)
PY
