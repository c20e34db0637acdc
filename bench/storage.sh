#!/usr/bin/env bash
# storage.sh - what object storage costs: Kafka -> Delta and Kafka -> Iceberg, append and upsert, each on
# local disk and on the stack's S3 (Iceberg through its REST catalog), on the same events in the same run,
# rounds alternating so the machine's load falls on both alike.  Prints events/s, peak RSS, the mean commit
# time from cdcflow's own batch lines, and S3/local; then the same with a file source (no Kafka fetch to
# hide the store behind), and the S3 server's own request rate for boto3, to tell the server's cost from
# cdcflow's.  Prints figures; never fails on speed.  S3 figures are skipped when the stack's S3 or catalog
# is down; everything written to S3 and the catalog is removed afterwards.
#   STORAGE_BENCH_EVENTS (300000)  STORAGE_BENCH_ROUNDS (3)  STORAGE_BENCH_BATCH (100000)
set -u
cd "$(dirname "$0")/.."
make -s -j2 all build/bench/bench_pipeline >/dev/null || exit 1
N=${STORAGE_BENCH_EVENTS:-300000}
ROUNDS=${STORAGE_BENCH_ROUNDS:-3}
BATCH=${STORAGE_BENCH_BATCH:-100000}
PY=.venv/bin/python
out=$(mktemp -d /tmp/cdcflow-bench-storage.XXXXXX)
tag=$$$(date +%s)
prefix=bench-storage-$tag          # s3://cdcflow/$prefix/...
ns=bench_storage_$tag              # the catalog namespace of the REST runs
topic=cdcflow-bench-storage-$tag

# The stack's S3 (scripts/stack.sh s3-env); S3_ENDPOINT and ICEBERG_CATALOG_URI set beforehand win.
s3_override=${S3_ENDPOINT:-}
eval "$(scripts/stack.sh s3-env)"
if [ -n "$s3_override" ]; then export S3_ENDPOINT=$s3_override AWS_ENDPOINT_URL_S3=$s3_override; fi
CATALOG=${ICEBERG_CATALOG_URI:-http://127.0.0.1:8181}
export ICEBERG_CATALOG_URI=$CATALOG   # for scripts/s3_tools.py; the local runs must not see it
kafka_up=0 s3_up=0 cat_up=0 made_topic=0
cleanup() {
    if [ $s3_up = 1 ]; then
        $PY scripts/s3_tools.py clean "$prefix" $([ $cat_up = 1 ] && echo "$ns") | sed 's/^/storage: /'
    fi
    if [ $made_topic = 1 ]; then
        $PY scripts/s3_tools.py delete-topic "$topic" || echo "storage: note: could not delete topic $topic"
    fi
    rm -rf "$out"
}
trap cleanup EXIT

if scripts/stack.sh status 2>/dev/null | grep -qE '^kafka +up'; then kafka_up=1; fi
if [ ! -x $PY ]; then
    s3_why="no $PY (make setup)"
elif why=$($PY scripts/s3_tools.py up s3 2>&1); then
    s3_up=1
    if why=$($PY scripts/s3_tools.py up catalog 2>&1); then cat_up=1; else cat_why=$why; fi
else
    s3_why=$why
fi
cat_why=${cat_why:-${s3_why:-}}

build/bench/bench_pipeline gen "$N" "$out/events.jsonl" || exit 1
sources=file
if [ $kafka_up = 1 ]; then
    build/bench/bench_pipeline produce "$N" "$topic" 127.0.0.1:9092 || exit 1
    made_topic=1
    sources="kafka file"
fi

# One run: appends "SOURCE KIND MODE STORE SECONDS RSS_KB COMMITS COMMIT_MS_SUM RC" to $out/results.
run_one() {
    local src=$1 kind=$2 mode=$3 store=$4 r=$5 t0 t1 rc loc src_args
    local name=$src-$kind-$mode-$store-$r
    case $src in
        kafka) src_args=(--bootstrap 127.0.0.1:9092 --topic "$topic" --group-id "$topic-$name") ;;
        file)  src_args=(--source "file:$out/events.jsonl") ;;
    esac
    case $kind-$store in
        delta-local)   loc=(--table-path "$out/$name") ;;
        delta-s3)      loc=(--table-path "s3://$S3_BUCKET/$prefix/$name") ;;
        iceberg-local) loc=(--warehouse "$out/wh" --namespace bench --table "${name//-/_}") ;;
        iceberg-s3)    loc=(--warehouse "s3://$S3_BUCKET/$prefix/wh" --namespace "$ns" --table "${name//-/_}"
                            --catalog-uri "$CATALOG") ;;
    esac
    t0=$(date +%s.%N)
    env -u ICEBERG_CATALOG_URI /usr/bin/time -f '%M' -o "$out/rss" build/cdcflow "$kind" --available-now \
        "${src_args[@]}" "${loc[@]}" --mode "$mode" --max-offsets-per-trigger "$BATCH" --dlq off \
        --checkpoint-location "$out/ck-$name" --metrics-port 0 --log-level info >/dev/null 2>"$out/log"
    rc=$?
    t1=$(date +%s.%N)
    [ $rc -eq 0 ] || { echo "storage $name: failed (exit $rc)"; tail -n 3 "$out/log" | cut -c1-300; }
    # cdcflow's batch lines end "..., 178.9 ms (commit 44.9 ms)".
    sed -nE 's/.*\(commit ([0-9.]+) ms\)$/\1/p' "$out/log" |
        awk -v k="$src $kind $mode $store" -v a="$t0" -v b="$t1" -v rss="$(tail -n1 "$out/rss")" -v rc=$rc \
            '{ n++; c += $1 } END { printf "%s %.3f %d %d %.1f %d\n", k, b - a, rss + 0, n, c, rc }' >>"$out/results"
    rm -rf "${out:?}/$name" "$out/wh/bench/${name//-/_}" "$out/ck-$name"
}

echo "-- $N events (Debezium customers: keys 1..100000 created, then 90% updates and 10% deletes of them), batches of $BATCH, --available-now;"
echo "   local disk ($out) against the stack's S3 ($AWS_ENDPOINT_URL_S3, moto) and Iceberg REST catalog ($CATALOG);"
echo "   median of $ROUNDS rounds, local and S3 runs alternating; peak RSS is the largest of the rounds"
[ $kafka_up = 1 ] || echo "storage kafka->*: skipped (Kafka down: scripts/stack.sh start); file source only"
for r in $(seq "$ROUNDS"); do
    for src in $sources; do
        for kind in delta iceberg; do
            for mode in append upsert; do
                run_one "$src" "$kind" "$mode" local "$r"
                if { [ $kind = delta ] && [ $s3_up = 1 ]; } || { [ $kind = iceberg ] && [ $cat_up = 1 ]; }; then
                    run_one "$src" "$kind" "$mode" s3 "$r"
                fi
            done
        done
    done
done

python3 - "$out/results" "$N" "${s3_why:-}" "${cat_why:-}" <<'PY'
import statistics, sys
path, n, s3_why, cat_why = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = {}
for line in open(path):
    src, kind, mode, store, s, rss, commits, cms, rc = line.split()
    runs.setdefault((src, kind, mode, store), []).append((float(s), int(rss), int(commits), float(cms), int(rc)))
order = [(src, kind, mode) for src in ("kafka", "file") for kind in ("delta", "iceberg") for mode in ("append", "upsert")]
for src, kind, mode in order:
    if (src, kind, mode, "local") not in runs:
        continue
    local = None
    for store in ("local", "s3"):
        label = f"storage {src}->{kind} ({mode}, {'local' if store == 'local' else 's3' if kind == 'delta' else 'rest catalog + s3'})"
        rs = runs.get((src, kind, mode, store))
        if rs is None:
            why = s3_why if kind == "delta" else cat_why
            print(f"{label}: skipped: {why}")
            continue
        ok = [x for x in rs if x[4] == 0]
        if not ok:
            print(f"{label}: failed in every round")
            continue
        s = statistics.median(x[0] for x in ok)
        rss = max(x[1] for x in ok) / 1024
        commits = sum(x[2] for x in ok)
        cms = sum(x[3] for x in ok) / commits if commits else 0.0
        line = (f"{label}: {n} events in {s:.2f} s = {n / s:.0f} events/s, peak RSS {rss:.1f} MB, "
                f"commit {cms:.1f} ms mean")
        if store == "local":
            local = s
        elif local:
            line += f"; S3/local {s / local:.2f}x the time"
        if len(ok) < len(rs):
            line += f" ({len(rs) - len(ok)} of {len(rs)} rounds failed)"
        print(line)
PY
if [ $s3_up = 1 ]; then
    $PY scripts/s3_tools.py put-rate | sed 's/^/storage: /'
else
    echo "storage: s3 server alone: skipped: $s3_why"
fi
