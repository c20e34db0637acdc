"""test_spark_readers.py - Spark as a third reader of the tables cdcflow writes: Delta with delta-spark
(rows, Change Data Feed in batch and as a stream, time travel, a table read from its checkpoint) and
Iceberg through a Hadoop catalog (rows with position deletes applied, the snapshots table, time
travel by snapshot id); for both, partitioned tables with pruning filters, columns added mid-stream,
tables after `cdcflow optimize`, and cdcflow resuming after Spark wrote to its table.

The tables come from build/cdcflow itself (`delta` / `iceberg` with `--source file:`), fed with
Debezium JSON lines made here from the captured fixtures in tests/data/debezium.  What Spark reads
is compared with a model of the events and with deltalake / pyiceberg.

Spark's Delta and Iceberg jars come from deploy/spark/pom.xml through scripts/setup.sh into
.cache/spark/jars; without them (or without pyspark or a JDK) the module skips.  One local
SparkSession serves the whole module: starting the JVM costs more than the reads.
"""

import base64
import copy
import datetime
import glob
import json
import os
import shutil
import sys
import subprocess
import uuid
from decimal import Decimal

import pytest

from conftest import CDCFLOW, ROOT
sys.path.insert(0, os.path.join(ROOT, "tests", "common"))   # the module both reader suites share
from cdc_tables import (CUSTOMER_COLS, CUSTOMERS_TOPIC, EPOCH, FIXTURES, ORDER_COLS, ORDERS_TOPIC,  # noqa: E402
                        _fixture, customer_row, decimal_b64, mirror, order_row, run_cdcflow,
                        write_jsonl)
from spark_session import local_session  # noqa: E402,F401  (test_spark_s3 and test_scaleout take it from here)

JARS_DIR = os.environ.get("CF_SPARK_JARS", os.path.join(ROOT, ".cache", "spark", "jars"))
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"


# Compared column by column with the model; the other columns (ingestion times) are compared
# between readers only.

N_CUSTOMER_EVENTS = 150
CUSTOMER_BATCH = 12          # -> 13 commits: Delta writes a checkpoint at version 10
N_ORDER_EVENTS = 40
ORDER_BATCH = 25             # -> 2 commits


# ------------------------------------------------------------------ Debezium events

def customer_event(tmpl, i, nkeys=25):
    """Envelope-less customers event i: creates for the first nkeys, then updates, every 11th a delete,
    and a deleted key comes back later with a create."""
    key = (i * 7) % nkeys + 1
    if i < nkeys:
        op = "c"
    elif i % 11 == 10:
        op = "d"
    else:
        op = "u"
    row = dict(tmpl["after"], customer_id=key, email=f"user{key}@example.com", first_name=f"F{i}",
               last_name=f"L{key}", city=["Austin", "S\u00e3o Paulo", "K\u00f6ln/Porz=1 %"][i % 3],
               registration_date=1704103200123456 + i * 3600000001, is_active=i % 2 == 0,
               lifetime_value=decimal_b64(i * 1234 - 9000))
    e = copy.deepcopy(tmpl)
    e.update(op=op, before=row if op == "d" else None, after=None if op == "d" else row)
    e["source"]["lsn"] = 24000000 + i
    return e


def customer_events(n):
    tmpl = _fixture("customers_create_bare.json")
    events = [customer_event(tmpl, i) for i in range(n)]
    # Some updates of deleted keys would be re-creates in PostgreSQL: say so, as Debezium would.
    live = set()
    for e in events:
        row = e["after"] or e["before"]
        if e["op"] == "d":
            live.discard(row["customer_id"])
        else:
            if e["op"] == "u" and row["customer_id"] not in live:
                e["op"] = "c"
            live.add(row["customer_id"])
    return events


def order_event(tmpl, i):
    """Enveloped orders event i (schema included): DECIMAL(12,2), MicroTimestamp (no zone),
    ZonedTimestamp, booleans, nulls and non-ASCII text."""
    e = copy.deepcopy(tmpl)
    p = e["payload"]
    row = dict(p["after"], order_id=i + 1, customer_id=i % 7, order_date=1704103200123456 + i * 86400000001,
               status=["pending", "shipped", "delivered"][i % 3], item_count=i % 4,
               total_amount=decimal_b64(i * 12345 - 50000), is_gift=i % 2 == 0,
               notes=None if i % 5 == 0 else f"note {i} \u00e9\u00e8",
               shipped_at=None if i % 3 == 0 else "2024-03-0%dT10:11:12.345678Z" % (1 + i % 9))
    p.update(op="c", before=None, after=row)
    p["source"]["lsn"] = 30000000 + i
    return e


def order_events(n):
    tmpl = _fixture("real_orders_create.json")
    return [order_event(tmpl, i) for i in range(n)]


def evolved_order_events(n, at):
    """Orders events whose schema gains two columns (a decimal and a string) from event `at` on,
    as Debezium sends after an ALTER TABLE ... ADD COLUMN."""
    events = order_events(n)
    for i, e in enumerate(events[at:], at):
        for part in e["schema"]["fields"][:2]:          # before, after
            part["fields"] += [
                {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                 "parameters": {"scale": "3", "connect.decimal.precision": "9"}, "field": "discount"},
                {"type": "string", "optional": True, "field": "gift_message"}]
        e["payload"]["after"].update(discount=decimal_b64(i * 111 - 500),
                                     gift_message=None if i % 4 == 0 else f"msg {i}")
    return events


def evolved_order_row(e):
    row = order_row(e)
    after = e["payload"]["after"]
    row["discount"] = None
    if "discount" in after:
        row["discount"] = Decimal(int.from_bytes(base64.b64decode(after["discount"]), "big", signed=True)).scaleb(-3)
    row["gift_message"] = after.get("gift_message")
    return row


# ------------------------------------------------------------------ values

def plain(v):
    """One form for values of every reader: naive UTC datetimes (Spark runs with session zone UTC;
    deltalake and pyiceberg give zone-aware values for timestamp with zone)."""
    if isinstance(v, datetime.datetime) and v.tzinfo is not None:
        return v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return v


def tuples(dicts, cols):
    return sorted(tuple(plain(d[c]) for c in cols) for d in dicts)


def arrow_rows(table, cols=None):
    cols = cols or table.column_names
    return tuples(table.select(cols).to_pylist(), cols)


def spark_rows(df, cols=None):
    cols = cols or df.columns
    return tuples((r.asDict() for r in df.select(*cols).collect()), cols)


def commit_offsets(table_path, topic=CUSTOMERS_TOPIC):
    """Delta version -> next source offset its txn action records (batch boundaries in the events)."""
    out = {}
    for f in sorted(glob.glob(os.path.join(table_path, "_delta_log", "*.json"))):
        v = int(os.path.basename(f).split(".")[0])
        with open(f) as fh:
            for line in fh:
                a = json.loads(line)
                if "txn" in a and a["txn"]["appId"].endswith(f"{topic}-0"):
                    out[v] = a["txn"]["version"]
    return out


# ------------------------------------------------------------------ Spark

def _spark_or_skip():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("pyspark is not installed (scripts/setup.sh installs tests/requirements.txt)")
    jars = sorted(glob.glob(os.path.join(JARS_DIR, "*.jar")))
    names = " ".join(os.path.basename(j) for j in jars)
    if "delta-spark" not in names or "iceberg-spark-runtime" not in names:
        pytest.skip(f"Spark's Delta/Iceberg jars are not in {JARS_DIR} (scripts/setup.sh fetches them)")
    if not os.environ.get("JAVA_HOME") and os.path.isdir(JAVA_HOME):
        os.environ["JAVA_HOME"] = JAVA_HOME
    if not os.environ.get("JAVA_HOME") and not shutil.which("java"):
        pytest.skip("no JDK for Spark (package openjdk-17-jdk-headless)")
    return jars


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    session = local_session("cdcflow-readers", _spark_or_skip(), tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()


def iceberg_catalog(spark, warehouse):
    """Name of a Spark catalog (Iceberg, type hadoop) over `warehouse`; catalogs load lazily, so one
    can be declared per warehouse after the session started."""
    name = "ice_" + uuid.uuid4().hex[:8]
    spark.conf.set(f"spark.sql.catalog.{name}", "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"spark.sql.catalog.{name}.type", "hadoop")
    spark.conf.set(f"spark.sql.catalog.{name}.warehouse", "file://" + warehouse)
    return name


# ------------------------------------------------------------------ tables (written once per module)

@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Delta and Iceberg tables cdcflow writes from the same events: customers upsert in many
    commits (13 with a checkpoint at version 10) and orders append in two."""
    root = str(tmp_path_factory.mktemp("cdcflow-tables"))
    cust = customer_events(N_CUSTOMER_EVENTS)
    orders = order_events(N_ORDER_EVENTS)
    cust_file = os.path.join(root, "customers.jsonl")
    orders_file = os.path.join(root, "orders.jsonl")
    write_jsonl(cust_file, cust)
    write_jsonl(orders_file, orders)
    t = {
        "customers": cust, "orders": orders, "root": root,
        "delta_upsert": os.path.join(root, "delta", "customers"),
        "delta_append": os.path.join(root, "delta", "orders"),
        "warehouse": os.path.join(root, "iceberg"),
    }
    run_cdcflow("delta", cust_file, root, "--table-path", t["delta_upsert"], "--mode", "upsert",
                "--max-offsets-per-trigger", CUSTOMER_BATCH)
    run_cdcflow("delta", orders_file, root, "--topic", ORDERS_TOPIC, "--table-path", t["delta_append"],
                "--max-offsets-per-trigger", ORDER_BATCH)
    run_cdcflow("iceberg", cust_file, root, "--warehouse", t["warehouse"], "--namespace", "analytics",
                "--table", "customers", "--mode", "upsert", "--max-offsets-per-trigger", CUSTOMER_BATCH)
    run_cdcflow("iceberg", orders_file, root, "--topic", ORDERS_TOPIC, "--warehouse", t["warehouse"],
                "--namespace", "analytics", "--table", "orders", "--max-offsets-per-trigger", ORDER_BATCH)
    # Partitioned upserts: rows move between partitions as their city changes, and the cities need
    # escaping in paths ("/", "=", "%", non-ASCII).
    t["delta_part"] = os.path.join(root, "delta", "customers_part")
    run_cdcflow("delta", cust_file, root, "--table-path", t["delta_part"], "--mode", "upsert",
                "--max-offsets-per-trigger", CUSTOMER_BATCH, "--partition-by", "location")
    run_cdcflow("iceberg", cust_file, root, "--warehouse", t["warehouse"], "--namespace", "analytics",
                "--table", "customers_part", "--mode", "upsert", "--max-offsets-per-trigger", CUSTOMER_BATCH,
                "--partition-by", "location", "--partition-by", "day(registration_date)",
                "--partition-by", "bucket[4](customer_id)")
    return t


# Filters whose answers depend on partition pruning and on the min/max statistics cdcflow writes
# (Delta data skipping, Iceberg manifest and row-group bounds): SQL for Spark, the same in Python.
KOELN = "K\u00f6ln/Porz=1 %, TX, USA"
MID_TS = EPOCH + datetime.timedelta(microseconds=1704103200123456 + 138 * 3600000001 + 1)
FILTERS = [
    (f"location = '{KOELN}'", lambda r: r["location"] == KOELN),
    ("customer_id BETWEEN 5 AND 9", lambda r: 5 <= r["customer_id"] <= 9),
    (f"registration_date >= '{MID_TS.isoformat(sep=' ')}'", lambda r: r["registration_date"] >= MID_TS),
    ("email = 'user7@example.com'", lambda r: r["email"] == "user7@example.com"),
    ("is_active AND location LIKE 'S%'", lambda r: r["is_active"] and r["location"].startswith("S")),
    ("_source_lsn > 24000140", lambda r: r["_source_lsn"] > 24000140),
]


def check_filters(df, want_rows):
    for sql, pred in FILTERS:
        want = tuples((r for r in want_rows if pred(r)), CUSTOMER_COLS)
        assert 0 < len(want) < len(want_rows), sql      # a filter that keeps some rows, not all
        assert spark_rows(df.where(sql), CUSTOMER_COLS) == want, sql


def delta_table(path, version=None):
    from deltalake import DeltaTable
    return DeltaTable(path, version=version)


def iceberg_static(table_dir):
    from pyiceberg.table import StaticTable
    hint = open(os.path.join(table_dir, "metadata", "version-hint.text")).read().strip()
    return StaticTable.from_metadata(os.path.join(table_dir, "metadata", f"v{hint}.metadata.json"))


# ------------------------------------------------------------------ Delta

def test_delta_append_types(spark, tables):
    path = tables["delta_append"]
    df = spark.read.format("delta").load(path)
    types = dict(df.dtypes)
    assert (types["total_amount"], types["order_date"], types["shipped_at"], types["is_gift"],
            types["notes"], types["_source_lsn"]) == ("decimal(12,2)", "timestamp_ntz", "timestamp", "boolean",
                                                      "string", "bigint")
    want = tuples((order_row(e) for e in tables["orders"]), ORDER_COLS)
    assert spark_rows(df, ORDER_COLS) == want
    # Every column, ingestion times included, as delta-rs reads them.
    assert spark_rows(df) == arrow_rows(delta_table(path).to_pyarrow_table())


def test_delta_upsert_rows(spark, tables):
    path = tables["delta_upsert"]
    df = spark.read.format("delta").load(path)
    assert dict(df.dtypes)["lifetime_value"] == "double"
    want = tuples(mirror(tables["customers"]).values(), CUSTOMER_COLS)
    assert len(want) > 10
    assert spark_rows(df, CUSTOMER_COLS) == want
    assert spark_rows(df) == arrow_rows(delta_table(path).to_pyarrow_table())


def test_delta_change_data_feed(spark, tables):
    path = tables["delta_upsert"]
    cdf = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0)
           .load(path))
    cols = CUSTOMER_COLS + ["_change_type", "_commit_version"]
    got = spark_rows(cdf, cols)
    assert {r[-2] for r in got} == {"insert", "update_preimage", "update_postimage", "delete"}

    # The same change rows as delta-rs's load_cdf.
    rs = delta_table(path).load_cdf(starting_version=0).read_all()
    assert got == arrow_rows(rs, cols)

    # Commit timestamps: the two readers take them from different places.  delta-rs reads the
    # commitInfo timestamp; Spark, with in-commit timestamps off, the commit file's modification
    # time, made strictly increasing (a commit no later than the one before it gets that one + 1 ms).
    info_ts, mtime_ts, prev = {}, {}, None
    for f in sorted(glob.glob(os.path.join(path, "_delta_log", "*.json"))):
        v = int(os.path.basename(f).split(".")[0])
        with open(f) as fh:
            info_ts[v] = next(json.loads(line)["commitInfo"]["timestamp"] for line in fh if '"commitInfo"' in line)
        ms = os.stat(f).st_mtime_ns // 1000000
        prev = mtime_ts[v] = ms if prev is None or ms > prev else prev + 1
    as_ms = lambda t: round((plain(t) - EPOCH).total_seconds() * 1000)  # noqa: E731
    assert {(r._commit_version, as_ms(r._commit_timestamp))
            for r in cdf.select("_commit_version", "_commit_timestamp").distinct().collect()} == \
        set(mtime_ts.items())
    assert {(v, as_ms(t)) for v, t in zip(rs.column("_commit_version").to_pylist(),
                                          rs.column("_commit_timestamp").to_pylist())} == set(info_ts.items())

    # Replaying the changes version by version rebuilds the mirror at each batch boundary, and every
    # preimage is the row the key held before that version.
    offsets = commit_offsets(path)
    assert sorted(offsets) == list(range(len(offsets))) and len(offsets) > 10
    by_version = {}
    for r in cdf.select(*cols).collect():
        by_version.setdefault(r["_commit_version"], []).append(r.asDict())
    state = {}
    for v in sorted(offsets):
        before = dict(state)
        for r in by_version.get(v, []):
            row = {c: plain(r[c]) for c in CUSTOMER_COLS}
            if r["_change_type"] == "update_preimage":
                assert before.get(row["customer_id"]) == row, (v, row)
            elif r["_change_type"] in ("insert", "update_postimage"):
                state[row["customer_id"]] = row
            elif r["_change_type"] == "delete":
                assert before.get(row["customer_id"]) == row, (v, row)
                del state[row["customer_id"]]
        want = mirror(tables["customers"][:offsets[v]])
        assert state == {k: {c: plain(w[c]) for c in CUSTOMER_COLS} for k, w in want.items()}, v


def test_delta_change_data_feed_as_a_stream(spark, tables, tmp_path):
    """A downstream Spark job consuming the change feed incrementally (several micro-batches)
    sees exactly the rows of the batch read."""
    path = tables["delta_upsert"]
    name = "cdf_" + uuid.uuid4().hex[:8]
    q = (spark.readStream.format("delta").option("readChangeFeed", "true").option("startingVersion", 0)
         .option("maxFilesPerTrigger", 3).load(path)
         .writeStream.format("memory").queryName(name).option("checkpointLocation", str(tmp_path / "ckpt"))
         .trigger(availableNow=True).start())
    q.awaitTermination()
    assert q.exception() is None
    assert q.lastProgress["batchId"] >= 2
    cols = CUSTOMER_COLS + ["_change_type", "_commit_version"]
    batch = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0)
             .load(path))
    assert spark_rows(spark.table(name), cols) == spark_rows(batch, cols)


def test_delta_time_travel(spark, tables):
    path = tables["delta_upsert"]
    offsets = commit_offsets(path)
    for v in (0, 5, max(offsets)):
        df = spark.read.format("delta").option("versionAsOf", v).load(path)
        want = tuples(mirror(tables["customers"][:offsets[v]]).values(), CUSTOMER_COLS)
        assert spark_rows(df, CUSTOMER_COLS) == want, v
        assert spark_rows(df) == arrow_rows(delta_table(path, version=v).to_pyarrow_table()), v
    hist = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version").collect()
    assert sorted(r.version for r in hist) == sorted(offsets)


def test_delta_reads_from_checkpoint(spark, tables, tmp_path):
    """With the JSON commits before the checkpoint gone, only cdcflow's checkpoint can say what the
    table holds: Spark must read it."""
    src = tables["delta_upsert"]
    assert os.path.exists(os.path.join(src, "_delta_log", "00000000000000000010.checkpoint.parquet"))
    with open(os.path.join(src, "_delta_log", "_last_checkpoint")) as f:
        assert json.load(f)["version"] == 10
    path = str(tmp_path / "customers")
    shutil.copytree(src, path)
    for v in range(10):
        os.remove(os.path.join(path, "_delta_log", "%020d.json" % v))
    df = spark.read.format("delta").load(path)
    assert spark_rows(df, CUSTOMER_COLS) == tuples(mirror(tables["customers"]).values(), CUSTOMER_COLS)
    # Metadata and protocol come from the checkpoint too: Change Data Feed is still on.
    props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()}
    assert props.get("delta.enableChangeDataFeed") == "true"
    # The changes after the checkpoint are still readable.
    offsets = commit_offsets(src)
    cdf = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 11)
           .load(path))
    assert {r._commit_version for r in cdf.select("_commit_version").distinct().collect()} <= \
        set(v for v in offsets if v >= 11)


def test_delta_partitioned_upsert_and_pruning(spark, tables):
    path = tables["delta_part"]
    df = spark.read.format("delta").load(path)
    model = mirror(tables["customers"]).values()
    assert {r.location for r in df.select("location").distinct().collect()} == {r["location"] for r in model}
    assert spark_rows(df, CUSTOMER_COLS) == tuples(model, CUSTOMER_COLS)
    assert spark_rows(df) == arrow_rows(delta_table(path).to_pyarrow_table())
    check_filters(df, list(model))
    cols = CUSTOMER_COLS + ["_change_type", "_commit_version"]
    cdf = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0)
           .load(path))
    assert spark_rows(cdf, cols) == arrow_rows(delta_table(path).load_cdf(starting_version=0).read_all(), cols)


# ------------------------------------------------------------------ Iceberg

def test_iceberg_append_types(spark, tables):
    cat = iceberg_catalog(spark, tables["warehouse"])
    df = spark.table(f"{cat}.analytics.orders")
    types = dict(df.dtypes)
    # Debezium's MicroTimestamp has no zone, its ZonedTimestamp does: Iceberg keeps the difference.
    assert (types["total_amount"], types["order_date"], types["shipped_at"], types["is_gift"]) == \
        ("decimal(12,2)", "timestamp_ntz", "timestamp", "boolean")
    want = tuples((order_row(e) for e in tables["orders"]), ORDER_COLS)
    assert spark_rows(df, ORDER_COLS) == want
    py = iceberg_static(os.path.join(tables["warehouse"], "analytics", "orders")).scan().to_arrow()
    assert spark_rows(df) == arrow_rows(py)


def test_zone_less_timestamps_agree_in_a_new_york_session(spark, tables):
    """order_date is PostgreSQL `timestamp` (no zone): Delta's timestamp_ntz and Iceberg's
    timestamp read as the same wall-clock time with Spark's session at America/New_York (a UTC
    Delta timestamp would move five hours), and the zone-aware shipped_at moves alike in both."""
    want = {r[0]: r[2] for r in tuples((order_row(e) for e in tables["orders"]), ORDER_COLS)}
    cat = iceberg_catalog(spark, tables["warehouse"])
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        cols = ("order_id", "order_date", "shipped_at")
        delta = {r[0]: (r[1], r[2]) for r in spark.read.format("delta").load(tables["delta_append"]).select(*cols).collect()}
        ice = {r[0]: (r[1], r[2]) for r in spark.table(f"{cat}.analytics.orders").select(*cols).collect()}
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert {k: v[0] for k, v in delta.items()} == want
    assert delta == ice
    assert any(v[1] is not None for v in delta.values())


def test_iceberg_upsert_with_position_deletes(spark, tables):
    cat = iceberg_catalog(spark, tables["warehouse"])
    name = f"{cat}.analytics.customers"
    df = spark.table(name)
    want = tuples(mirror(tables["customers"]).values(), CUSTOMER_COLS)
    assert spark_rows(df, CUSTOMER_COLS) == want
    py = iceberg_static(os.path.join(tables["warehouse"], "analytics", "customers")).scan().to_arrow()
    assert spark_rows(df) == arrow_rows(py)
    # The retired rows are position deletes Spark had to apply (content 1), not equality deletes.
    kinds = {r.content: r.n for r in spark.sql(
        f"SELECT content, count(*) AS n FROM {name}.all_delete_files GROUP BY content").collect()}
    assert kinds.get(1, 0) > 0 and 2 not in kinds


def test_iceberg_snapshots_and_time_travel(spark, tables):
    cat = iceberg_catalog(spark, tables["warehouse"])
    name = f"{cat}.analytics.customers"
    snaps = spark.sql(f"SELECT snapshot_id, parent_id, operation, summary FROM {name}.snapshots "
                      "ORDER BY committed_at, snapshot_id").collect()
    meta = iceberg_static(os.path.join(tables["warehouse"], "analytics", "customers")).metadata
    assert [s.snapshot_id for s in snaps] == [s.snapshot_id for s in meta.snapshots]
    assert [s.parent_id for s in snaps] == [s.parent_snapshot_id for s in meta.snapshots]
    assert len(snaps) == -(-N_CUSTOMER_EVENTS // CUSTOMER_BATCH)
    assert {s.operation for s in snaps} <= {"append", "overwrite", "delete"}
    key = f"cdcflow.offsets.{CUSTOMERS_TOPIC}.0"
    offsets = [int(s.summary[key]) for s in snaps]
    assert offsets == sorted(offsets) and offsets[-1] == N_CUSTOMER_EVENTS

    for i in (0, len(snaps) // 2):
        sid = snaps[i].snapshot_id
        old = spark.read.option("snapshot-id", sid).table(name)
        want = tuples(mirror(tables["customers"][:offsets[i]]).values(), CUSTOMER_COLS)
        assert spark_rows(old, CUSTOMER_COLS) == want, i
        sql = spark.sql(f"SELECT * FROM {name} VERSION AS OF {sid}")
        assert spark_rows(sql, CUSTOMER_COLS) == want, i


def test_iceberg_partitioned_upsert_and_pruning(spark, tables):
    cat = iceberg_catalog(spark, tables["warehouse"])
    name = f"{cat}.analytics.customers_part"
    df = spark.table(name)
    model = list(mirror(tables["customers"]).values())
    assert spark_rows(df, CUSTOMER_COLS) == tuples(model, CUSTOMER_COLS)
    py = iceberg_static(os.path.join(tables["warehouse"], "analytics", "customers_part")).scan().to_arrow()
    assert spark_rows(df) == arrow_rows(py)
    # Spark takes identity-partitioned columns from the manifests' partition tuples, not from the
    # data files: they must agree with the rows' own values.
    parts = spark.sql(f"SELECT partition FROM {name}.files WHERE content = 0").collect()
    assert {p.partition.location for p in parts} <= {r["location"] for r in model}
    assert all(0 <= p.partition.customer_id_bucket < 4 for p in parts)
    check_filters(df, model)


def test_schema_evolution(spark, tmp_path):
    """Columns added mid-stream (inside one batch): old files read as nulls, by name in Delta and by
    field id in Iceberg."""
    events = evolved_order_events(40, at=20)
    src = str(tmp_path / "orders.jsonl")
    write_jsonl(src, events)
    delta_path, wh = str(tmp_path / "delta"), str(tmp_path / "iceberg")
    run_cdcflow("delta", src, str(tmp_path), "--topic", ORDERS_TOPIC, "--table-path", delta_path,
                "--max-offsets-per-trigger", 15)
    run_cdcflow("iceberg", src, str(tmp_path), "--topic", ORDERS_TOPIC, "--warehouse", wh,
                "--namespace", "analytics", "--table", "orders", "--max-offsets-per-trigger", 15)
    cols = ORDER_COLS + ["discount", "gift_message"]
    want = tuples((evolved_order_row(e) for e in events), cols)
    assert sum(1 for r in want if r[-2] is not None) == 20

    d = spark.read.format("delta").load(delta_path)
    assert dict(d.dtypes)["discount"] == "decimal(9,3)"
    assert spark_rows(d, cols) == want
    assert spark_rows(d) == arrow_rows(delta_table(delta_path).to_pyarrow_table())
    # The version before the change keeps the old schema.
    assert "discount" not in spark.read.format("delta").option("versionAsOf", 0).load(delta_path).columns

    cat = iceberg_catalog(spark, wh)
    i = spark.table(f"{cat}.analytics.orders")
    assert dict(i.dtypes)["discount"] == "decimal(9,3)"
    assert spark_rows(i, cols) == want
    assert spark_rows(i) == arrow_rows(iceberg_static(os.path.join(wh, "analytics", "orders")).scan().to_arrow())


def test_after_optimize(spark, tables, tmp_path):
    """cdcflow optimize rewrites files without changing data: Spark reads the same rows, the
    Delta change feed shows no change for the compaction, older versions stay readable."""
    src = os.path.join(tables["root"], "customers.jsonl")
    delta_path, wh = str(tmp_path / "delta"), str(tmp_path / "iceberg")
    run_cdcflow("delta", src, str(tmp_path), "--table-path", delta_path, "--mode", "upsert",
                "--max-offsets-per-trigger", CUSTOMER_BATCH, "--partition-by", "location")
    run_cdcflow("iceberg", src, str(tmp_path), "--warehouse", wh, "--namespace", "analytics",
                "--table", "customers", "--mode", "upsert", "--max-offsets-per-trigger", CUSTOMER_BATCH)
    ice_dir = os.path.join(wh, "analytics", "customers")
    for table in (delta_path, ice_dir):
        r = subprocess.run([CDCFLOW, "optimize", table], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    want = tuples(mirror(tables["customers"]).values(), CUSTOMER_COLS)

    last = max(commit_offsets(delta_path))
    opt = last + 1
    assert os.path.exists(os.path.join(delta_path, "_delta_log", "%020d.json" % opt))
    d = spark.read.format("delta").load(delta_path)
    assert spark_rows(d, CUSTOMER_COLS) == want
    assert len(d.inputFiles()) == len({r["location"] for r in mirror(tables["customers"]).values()})
    assert spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", opt) \
        .load(delta_path).count() == 0
    assert spark_rows(spark.read.format("delta").option("versionAsOf", last).load(delta_path),
                      CUSTOMER_COLS) == want
    hist = spark.sql(f"DESCRIBE HISTORY delta.`{delta_path}` LIMIT 1").collect()[0]
    assert (hist.version, hist.operation) == (opt, "OPTIMIZE")

    cat = iceberg_catalog(spark, wh)
    name = f"{cat}.analytics.customers"
    assert spark_rows(spark.table(name), CUSTOMER_COLS) == want
    snaps = spark.sql(f"SELECT snapshot_id, operation FROM {name}.snapshots ORDER BY committed_at, snapshot_id") \
        .collect()
    assert snaps[-1].operation == "replace"
    assert spark.sql(f"SELECT count(*) AS n FROM {name}.delete_files").collect()[0].n == 0
    before = spark.read.option("snapshot-id", snaps[-2].snapshot_id).table(name)
    assert spark_rows(before, CUSTOMER_COLS) == want


def test_cdcflow_continues_after_spark_writes(spark, tables, tmp_path):
    """Spark changes a cdcflow upsert table in between (copy-on-write DELETE, UPDATE and INSERT);
    cdcflow then resumes: its key index must find the rows in the files Spark rewrote, so no key
    ends up twice and Spark's rows that no event touches stay."""
    events = tables["customers"]
    first, rest = events[:100], events[100:]
    src = str(tmp_path / "customers.jsonl")
    write_jsonl(src, first)
    delta_path, wh = str(tmp_path / "delta"), str(tmp_path / "iceberg")
    sinks = [("delta", "--table-path", delta_path),
             ("iceberg", "--warehouse", wh, "--namespace", "analytics", "--table", "customers")]
    for sink, *where in sinks:
        run_cdcflow(sink, src, str(tmp_path), *where, "--mode", "upsert", "--max-offsets-per-trigger", 50)

    cat = iceberg_catalog(spark, wh)
    # The new row copies every other column of key 3's row (ingestion times and all).
    changed = {"customer_id": "999", "email": "'spark@example.com'", "_source_lsn": "1L"}
    for name in (f"delta.`{delta_path}`", f"{cat}.analytics.customers"):
        spark.sql(f"DELETE FROM {name} WHERE customer_id = 1")
        spark.sql(f"UPDATE {name} SET email = 'spark@example.com' WHERE customer_id = 2")
        select = ", ".join(f"{changed[c]} AS {c}" if c in changed else c for c in spark.table(name).columns)
        spark.sql(f"INSERT INTO {name} SELECT {select} FROM {name} WHERE customer_id = 3")
    write_jsonl(src, events)
    for sink, *where in sinks:
        run_cdcflow(sink, src, str(tmp_path), *where, "--mode", "upsert", "--max-offsets-per-trigger", 50)

    state = mirror(first)
    state.pop(1, None)
    state[2] = dict(state[2], email="spark@example.com")
    state[999] = dict(state[3], customer_id=999, email="spark@example.com", _source_lsn=1)
    for e in rest:
        row = customer_row(e)
        if e["op"] == "d":
            state.pop(row["customer_id"], None)
        else:
            state[row["customer_id"]] = row
    want = tuples(state.values(), CUSTOMER_COLS)
    assert 999 in state and 1 in state      # key 1 comes back through a later event

    spark.sql(f"REFRESH TABLE {cat}.analytics.customers")
    for df in (spark.read.format("delta").load(delta_path), spark.table(f"{cat}.analytics.customers")):
        assert spark_rows(df, CUSTOMER_COLS) == want
    assert arrow_rows(delta_table(delta_path).to_pyarrow_table(), CUSTOMER_COLS) == want
    assert arrow_rows(iceberg_static(os.path.join(wh, "analytics", "customers")).scan().to_arrow(),
                      CUSTOMER_COLS) == want


@pytest.mark.parametrize("table", ["orders", "customers_part"])
def test_iceberg_column_metrics_as_spark_decodes_them(spark, tables, table):
    """The files table decodes cdcflow's per-column counts and bounds (Iceberg's single-value
    serialization): they must describe each data file's own values, or Spark skips files it needs."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cat = iceberg_catalog(spark, tables["warehouse"])
    files = spark.sql(f"SELECT file_path, record_count, readable_metrics FROM {cat}.analytics.{table}.files "
                      "WHERE content = 0").collect()
    assert files
    for f in files:
        # ParquetFile: the file alone, without partition columns guessed from its folder names.
        data = pq.ParquetFile(f.file_path.replace("file://", "")).read()
        assert f.record_count == data.num_rows
        metrics = f.readable_metrics.asDict(recursive=True)
        for col in data.column_names:
            m, values = metrics[col], data.column(col)
            assert (m["value_count"], m["null_value_count"]) == (len(values), values.null_count), (f.file_path, col)
            assert m["column_size"] > 0, (f.file_path, col)
            if pa.types.is_floating(values.type):
                assert m["nan_value_count"] == (pc.sum(pc.is_nan(values)).as_py() or 0), (f.file_path, col)
            if values.null_count == len(values):
                assert m["lower_bound"] is None and m["upper_bound"] is None, (f.file_path, col)
                continue
            mm = pc.min_max(values)
            lo, hi = plain(mm["min"].as_py()), plain(mm["max"].as_py())
            if isinstance(lo, str):         # string bounds may be truncated prefixes
                assert m["lower_bound"] <= lo and hi <= m["upper_bound"], (f.file_path, col)
            else:
                assert (m["lower_bound"], m["upper_bound"]) == (lo, hi), (f.file_path, col)
