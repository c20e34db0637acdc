#!/usr/bin/env bash
# demo.sh - the whole chain on this machine: stack up, Debezium connector registered, sample changes written
# to PostgreSQL, the change events shown from Kafka, then the cdcflow pipelines (`make demo`).
#
# `make demo` has already run setup and built build/cdcflow.  Environment knobs:
#   DEMO_GENERATE_ARGS   arguments for `cdcflow generate` (default: a small mixed workload)
#   DEMO_PEEK_N          events printed per topic (default 3)
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

CDCFLOW=build/cdcflow
TOPICS="postgres.public.customers postgres.public.orders postgres.public.products postgres.public.inventory"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# A command we rely on must work, not be a placeholder: no quiet fallback here.
need_cmd() {
    "$CDCFLOW" "$1" --help >/dev/null 2>&1 ||
        fail "'cdcflow $1' does not work yet (cdcflow $1 --help exits non-zero); build it with make"
}

[ -x "$CDCFLOW" ] || fail "$CDCFLOW not built: run make"

step "starting the stack (PostgreSQL 15, Kafka KRaft, Kafka Connect + Debezium)"
scripts/stack.sh start || fail "the stack did not start"

step "registering the Debezium connector"
need_cmd connector
"$CDCFLOW" connector register || fail "cdcflow connector register failed"

# Messages on the CDC topics now (sum of the MESSAGES column of `cdcflow peek`).
events_now() { "$CDCFLOW" peek 2>/dev/null | awk 'NR > 1 { n += $3 } END { print n + 0 }'; }

step "writing sample inserts, updates and deletes into PostgreSQL"
need_cmd generate
need_cmd peek
before=$(events_now)
# shellcheck disable=SC2086 # the knob is a list of words
out=$("$CDCFLOW" generate ${DEMO_GENERATE_ARGS:-} 2>&1) || { printf '%s\n' "$out"; fail "cdcflow generate failed"; }
printf '%s\n' "$out"
rows=$(sed -nE 's/.* ([0-9]+) rows changed.*/\1/p' <<<"$out" | head -n1)

step "waiting for Debezium to publish them (one event per row changed, at most 60 s)"
want=$(( before + ${rows:-0} ))
t0=$SECONDS
while [ "$(events_now)" -lt "$want" ]; do
    [ $((SECONDS - t0)) -lt 60 ] || fail "only $(( $(events_now) - before )) of ${rows} events reached Kafka in 60 s: see scripts/stack.sh status and var/log/connect.log"
    sleep 0.5
done
echo "$(( $(events_now) - before )) new events on Kafka for ${rows:-0} rows changed, after $((SECONDS - t0)) s"

step "change events on Kafka"
"$CDCFLOW" peek || fail "cdcflow peek failed"
for t in $TOPICS; do
    printf -- '-- %s (last %s)\n' "$t" "${DEMO_PEEK_N:-3}"
    "$CDCFLOW" peek "$t" -n "${DEMO_PEEK_N:-3}" --timeout 10 | cut -c1-240 || fail "cdcflow peek $t failed"
done

# ------------------------------------------------------------------ pipelines
# The cdcflow pipelines start here: Kafka -> Delta Lake (Change Data Feed) and Kafka -> Iceberg v2, for
# the customers topic, each run until it has caught up with what is on Kafka (--available-now).  The
# tables live in var/demo/ and keep their Kafka offsets, so a second demo only adds the new events.
# Then all four topics at once: one `cdcflow run` process mirrors every table (upsert) into Delta and
# Iceberg, and the mirrors are counted against PostgreSQL.
DEMO_DIR=var/demo
run_pipelines() {
    local topic=postgres.public.customers
    need_cmd delta
    need_cmd iceberg
    step "pipeline: $topic -> Delta Lake ($DEMO_DIR/delta/customers)"
    "$CDCFLOW" delta --bootstrap 127.0.0.1:9092 --topic "$topic" --table-path "$DEMO_DIR/delta/customers" \
        --checkpoint-location "$DEMO_DIR/checkpoints/delta" --available-now --metrics-port 0 --log-level warn ||
        fail "cdcflow delta failed"
    "$CDCFLOW" history "$DEMO_DIR/delta/customers" | head -n 4 | cut -c1-160   # newest first
    "$CDCFLOW" scan "$DEMO_DIR/delta/customers" --limit 5 \
        --columns customer_id,full_name,location,customer_tier,_cdc_operation || fail "cdcflow scan failed"

    step "pipeline: $topic -> Iceberg v2 ($DEMO_DIR/iceberg/analytics/customers_analytics)"
    "$CDCFLOW" iceberg --bootstrap 127.0.0.1:9092 --topic "$topic" --warehouse "$DEMO_DIR/iceberg" \
        --checkpoint-location "$DEMO_DIR/checkpoints/iceberg" --available-now --metrics-port 0 --log-level warn ||
        fail "cdcflow iceberg failed"
    local meta
    meta=$(find "$DEMO_DIR/iceberg/analytics/customers_analytics/metadata" -name '*.metadata.json' | sort -V | tail -n 1)
    echo "current metadata: $meta"

    step "both tables read back by DuckDB (its delta and iceberg readers, not cdcflow's)"
    (cd tests/integration && ../../.venv/bin/python - "$ROOT/$DEMO_DIR/delta/customers" "$ROOT/$meta") <<'PY' ||
import sys
from conftest import duckdb_conn
con = duckdb_conn()
for name, scan in (("delta", f"delta_scan('{sys.argv[1]}')"), ("iceberg", f"iceberg_scan('{sys.argv[2]}')")):
    rows = con.sql(f"SELECT _cdc_operation, count(*) FROM {scan} GROUP BY 1 ORDER BY 1").fetchall()
    print(f"{name:8} " + ", ".join(f"{op} {n}" for op, n in rows))
PY
        fail "DuckDB could not read the tables"
}

run_mirrors() {
    local conf=$DEMO_DIR/all-tables.conf topics='^postgres\.public\.(customers|orders|products|inventory)$'
    need_cmd run
    mkdir -p "$DEMO_DIR"
    cat >"$conf" <<EOF
# written by scripts/demo.sh: every captured table, mirrored by primary key, in one process
delta   --bootstrap 127.0.0.1:9092 --topic '$topics' --table-path $DEMO_DIR/mirror/delta/{table} --mode upsert --available-now --group-id cdcflow-demo-mirror-delta --metrics-port 0 --checkpoint-location $DEMO_DIR/checkpoints/mirror-delta --log-level warn
iceberg --bootstrap 127.0.0.1:9092 --topic '$topics' --warehouse $DEMO_DIR/mirror/iceberg --namespace analytics --table {table} --mode upsert --available-now --group-id cdcflow-demo-mirror-iceberg --metrics-port 0 --checkpoint-location $DEMO_DIR/checkpoints/mirror-iceberg --log-level warn
EOF
    step "pipelines: all four topics -> Delta and Iceberg mirrors (cdcflow run $conf)"
    "$CDCFLOW" run "$conf" || fail "cdcflow run failed"

    step "mirrors read back by DuckDB, against PostgreSQL's own row counts"
    (cd tests/integration && ../../.venv/bin/python - "$ROOT/$DEMO_DIR/mirror") <<'PY' ||
import glob, os, sys
from conftest import duckdb_conn, pg_connect
root = sys.argv[1]
con = duckdb_conn()
pg = pg_connect()
print(f"{'table':10} {'postgres':>9} {'delta':>9} {'iceberg':>9}")
ok = True
for t in ("customers", "orders", "products", "inventory"):
    with pg.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {t}")
        want = cur.fetchone()[0]
    d = con.sql(f"SELECT count(*) FROM delta_scan('{root}/delta/{t}')").fetchone()[0]
    meta = sorted(glob.glob(f"{root}/iceberg/analytics/{t}/metadata/v*.metadata.json"),
                  key=lambda p: int(os.path.basename(p)[1:].split(".")[0]))[-1]
    i = con.sql(f"SELECT count(*) FROM iceberg_scan('{meta}')").fetchone()[0]
    ok &= want == d == i
    print(f"{t:10} {want:>9} {d:>9} {i:>9}")
sys.exit(0 if ok else 1)
PY
        fail "a mirror differs from PostgreSQL (see the counts above)"
}

run_pipelines
run_mirrors

step "done.  The stack keeps running: scripts/stack.sh status | stop"
