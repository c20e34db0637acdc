#!/usr/bin/env bash
# demo.sh - the whole chain on this machine: stack up, Debezium connector registered, sample changes written
# to PostgreSQL, the change events shown from Kafka, then the cdcflow pipelines (`make demo`).
#
# `make demo` has already run setup and built build/cdcflow.  Environment knobs:
#   DEMO_STORAGE         local (default): tables under var/demo/;  s3 (`make demo-s3`): Delta tables on the
#                        stack's S3 and Iceberg tables through its REST catalog (storing in that S3), read back
#                        by deltalake, pyiceberg's RestCatalog and DuckDB's httpfs
#   DEMO_S3_PREFIX       with s3: the tables' key prefix in bucket cdcflow (default demo); catalog namespace demo
#   DEMO_GENERATE_ARGS   arguments for `cdcflow generate` (default: a small mixed workload)
#   DEMO_PEEK_N          events printed per topic (default 3)
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

CDCFLOW=build/cdcflow
# The stack's ports, as scripts/stack.sh takes them (STACK_*_PORT; defaults 9092, 5432, 8083, 8181), for
# cdcflow's commands here.
KAFKA=127.0.0.1:${STACK_KAFKA_PORT:-9092}
export PGPORT=${PGPORT:-${STACK_PG_PORT:-5432}} KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA}
export KAFKA_CONNECT_URL=${KAFKA_CONNECT_URL:-http://127.0.0.1:${STACK_CONNECT_PORT:-8083}}
TOPICS="postgres.public.customers postgres.public.orders postgres.public.products postgres.public.inventory"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# A command we rely on must work, not be a placeholder: no quiet fallback here.
need_cmd() {
    "$CDCFLOW" "$1" --help >/dev/null 2>&1 ||
        fail "'cdcflow $1' does not work yet (cdcflow $1 --help exits non-zero); build it with make"
}

[ -x "$CDCFLOW" ] || fail "$CDCFLOW not built: run make"
STORAGE=${DEMO_STORAGE:-local}
case $STORAGE in local|s3) ;; *) fail "DEMO_STORAGE must be local or s3, not '$STORAGE'" ;; esac

step "starting the stack (PostgreSQL 15, Kafka KRaft, Kafka Connect + Debezium, schema registry, S3, Iceberg REST catalog)"
scripts/stack.sh start || fail "the stack did not start"
if [ "$STORAGE" = s3 ]; then
    why=$(.venv/bin/python scripts/s3_tools.py up 2>&1) || fail "$why (see scripts/stack.sh status)"
    eval "$(scripts/stack.sh s3-env)"      # the S3 endpoint and keys, for cdcflow and the readers
    export ICEBERG_CATALOG_URI=${ICEBERG_CATALOG_URI:-http://127.0.0.1:${STACK_CATALOG_PORT:-8181}}   # for scan and history
fi

step "registering the Debezium connector"
need_cmd connector
"$CDCFLOW" connector register || fail "cdcflow connector register failed"

step "registering the Avro connector beside it (topics avro.public.*, schemas in the registry)"
export SCHEMA_REGISTRY_URL=${SCHEMA_REGISTRY_URL:-http://127.0.0.1:${STACK_REGISTRY_PORT:-8085}/apis/registry/v2}
"$CDCFLOW" connector register --format avro || fail "cdcflow connector register --format avro failed"

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
printf -- '-- avro.public.customers, first message (magic byte 0, 4-byte schema id, Avro datum)\n'
kcat -b "$KAFKA" -C -t avro.public.customers -c 1 -e -q 2>/dev/null | xxd | head -n 2
printf -- '-- schema registry subjects: %s\n' \
    "$(curl -fsS -m 5 "${SCHEMA_REGISTRY_URL%/apis/registry/v2}/apis/ccompat/v7/subjects" || echo '(registry not answering)')"

# ------------------------------------------------------------------ pipelines
# The cdcflow pipelines start here: Kafka -> Delta Lake (Change Data Feed) and Kafka -> Iceberg v2, for
# the customers topic, each run until it has caught up with what is on Kafka (--available-now).  The
# tables live in var/demo/ (with DEMO_STORAGE=s3: on the stack's S3, the Iceberg ones in its REST catalog,
# namespace demo) and keep their Kafka offsets, so a second demo only adds the new events.
# Then all four topics at once: one `cdcflow run` process mirrors every table (upsert) into Delta and
# Iceberg, and the mirrors are counted against PostgreSQL.
DEMO_DIR=var/demo
if [ "$STORAGE" = s3 ]; then
    # The stack's S3 and catalog keep everything in memory: `scripts/stack.sh stop` removes these tables.
    BASE=s3://$S3_BUCKET/${DEMO_S3_PREFIX:-demo}
    CKPT=$DEMO_DIR/checkpoints-s3 NS=demo GROUP_SUFFIX=-s3
    CATALOG_ARGS="--catalog-uri $ICEBERG_CATALOG_URI"
else
    BASE=$DEMO_DIR CKPT=$DEMO_DIR/checkpoints NS=analytics GROUP_SUFFIX= CATALOG_ARGS=
fi
PYTHON=$ROOT/.venv/bin/python

run_pipelines() {
    local topic=postgres.public.customers
    need_cmd delta
    need_cmd iceberg
    step "pipeline: $topic -> Delta Lake ($BASE/delta/customers)"
    "$CDCFLOW" delta --bootstrap $KAFKA --topic "$topic" --table-path "$BASE/delta/customers" \
        --checkpoint-location "$CKPT/delta" --available-now --metrics-port 0 --log-level warn ||
        fail "cdcflow delta failed"
    "$CDCFLOW" history "$BASE/delta/customers" | head -n 4 | cut -c1-160   # newest first
    "$CDCFLOW" scan "$BASE/delta/customers" --limit 5 \
        --columns customer_id,full_name,location,customer_tier,_cdc_operation || fail "cdcflow scan failed"

    step "pipeline: $topic -> Iceberg v2 ($BASE/iceberg/$NS/customers_analytics${CATALOG_ARGS:+, catalog $ICEBERG_CATALOG_URI})"
    # shellcheck disable=SC2086 # CATALOG_ARGS is empty or two words
    "$CDCFLOW" iceberg --bootstrap $KAFKA --topic "$topic" --warehouse "$BASE/iceberg" --namespace "$NS" \
        --table customers_analytics $CATALOG_ARGS \
        --checkpoint-location "$CKPT/iceberg" --available-now --metrics-port 0 --log-level warn ||
        fail "cdcflow iceberg failed"

    if [ "$STORAGE" = s3 ]; then
        step "both tables read back by DuckDB from S3 (httpfs; its delta and iceberg readers, not cdcflow's)"
        (cd tests/integration && "$PYTHON" - "$BASE/delta/customers" "$NS.customers_analytics") <<'PY' ||
import sys
from conftest import duckdb_conn
from objstore import duckdb_s3, rest_catalog
meta = rest_catalog().load_table(sys.argv[2]).metadata_location   # the catalog names the current metadata
print(f"current metadata (from the catalog): {meta}")
con = duckdb_s3(duckdb_conn())
for name, scan in (("delta", f"delta_scan('{sys.argv[1]}')"), ("iceberg", f"iceberg_scan('{meta}')")):
    rows = con.sql(f"SELECT _cdc_operation, count(*) FROM {scan} GROUP BY 1 ORDER BY 1").fetchall()
    print(f"{name:8} " + ", ".join(f"{op} {n}" for op, n in rows))
con.close()
PY
            fail "DuckDB could not read the tables"
        return
    fi
    local meta
    meta=$(find "$DEMO_DIR/iceberg/analytics/customers_analytics/metadata" -name '*.metadata.json' | sort -V | tail -n 1)
    echo "current metadata: $meta"

    step "both tables read back by DuckDB (its delta and iceberg readers, not cdcflow's)"
    (cd tests/integration && "$PYTHON" - "$ROOT/$DEMO_DIR/delta/customers" "$ROOT/$meta") <<'PY' ||
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
    local conf=$DEMO_DIR/all-tables$GROUP_SUFFIX.conf topics='^postgres\.public\.(customers|orders|products|inventory)$'
    need_cmd run
    mkdir -p "$DEMO_DIR"
    cat >"$conf" <<EOF
# written by scripts/demo.sh: every captured table, mirrored by primary key, in one process
delta   --bootstrap $KAFKA --topic '$topics' --table-path $BASE/mirror/delta/{table} --mode upsert --available-now --group-id cdcflow-demo-mirror-delta$GROUP_SUFFIX --metrics-port 0 --checkpoint-location $CKPT/mirror-delta --log-level warn
iceberg --bootstrap $KAFKA --topic '$topics' --warehouse $BASE/mirror/iceberg --namespace $NS --table {table} $CATALOG_ARGS --mode upsert --available-now --group-id cdcflow-demo-mirror-iceberg$GROUP_SUFFIX --metrics-port 0 --checkpoint-location $CKPT/mirror-iceberg --log-level warn
EOF
    step "pipelines: all four topics -> Delta and Iceberg mirrors (cdcflow run $conf)"
    "$CDCFLOW" run "$conf" || fail "cdcflow run failed"

    if [ "$STORAGE" = s3 ]; then
        step "mirrors read back from S3 by deltalake, pyiceberg (REST catalog) and DuckDB (httpfs), against PostgreSQL's own row counts"
        (cd tests/integration && "$PYTHON" - "$BASE/mirror" "$NS") <<'PY' ||
import sys
from conftest import duckdb_conn, pg_connect
from objstore import delta_table, duckdb_s3, rest_catalog
root, ns = sys.argv[1], sys.argv[2]
con = duckdb_s3(duckdb_conn())
cat = rest_catalog()
pg = pg_connect()
print(f"{'table':10} {'postgres':>9} {'deltalake':>10} {'pyiceberg':>10} {'duckdb/delta':>13} {'duckdb/iceberg':>15}")
ok = True
for t in ("customers", "orders", "products", "inventory"):
    with pg.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {t}")
        want = cur.fetchone()[0]
    d = delta_table(f"{root}/delta/{t}").to_pyarrow_table().num_rows
    tbl = cat.load_table(f"{ns}.{t}")
    i = tbl.scan().to_arrow().num_rows                 # position deletes applied by pyiceberg
    dd = con.sql(f"SELECT count(*) FROM delta_scan('{root}/delta/{t}')").fetchone()[0]
    di = con.sql(f"SELECT count(*) FROM iceberg_scan('{tbl.metadata_location}')").fetchone()[0]
    ok &= want == d == i == dd == di
    print(f"{t:10} {want:>9} {d:>10} {i:>10} {dd:>13} {di:>15}")
con.close()
sys.exit(0 if ok else 1)
PY
            fail "a mirror differs from PostgreSQL (see the counts above)"
        return
    fi
    step "mirrors read back by DuckDB, against PostgreSQL's own row counts"
    (cd tests/integration && "$PYTHON" - "$ROOT/$DEMO_DIR/mirror") <<'PY' ||
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

if [ "$STORAGE" = s3 ]; then
    step "done.  The tables stay in s3://$S3_BUCKET/${DEMO_S3_PREFIX:-demo}/ and catalog namespace $NS until the stack stops (scripts/stack.sh status | stop)"
else
    step "done.  The stack keeps running: scripts/stack.sh status | stop"
fi
