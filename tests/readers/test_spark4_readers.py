"""test_spark4_readers.py - every kind of table cdcflow writes, read by the newest Spark: Spark 4.1
(pyspark, tests/requirements-newest.txt) with Delta's and Iceberg's Spark 4.1 jars
(deploy/spark4/pom.xml, fetched by scripts/setup.sh into .cache/spark4/jars).  Rows and types are
compared with a model of the events and with deltalake, DuckDB and pyiceberg reading the same tables.

The tables are test_newest_readers.py's (build_tables: Delta append, upsert, partitioned,
checkpointed, checkpoint-only and optimized; Iceberg append, upsert with position deletes, and
partitioned by identity, day and bucket), written here once more for this module.  Beyond reading
them: the Delta change feed and time travel, Iceberg snapshots and time travel, Spark's
merge-on-read DELETE/UPDATE/MERGE on a cdcflow Iceberg upsert table with cdcflow resuming after it,
and a Delta table Spark maintains with deletion vectors that cdcflow then feeds.

One local SparkSession serves the module: starting the JVM costs more than the reads.
"""

import copy
import datetime
import glob
import json
import os
import sys

import pytest

from conftest import ROOT, SPARK4_JARS, spark4_jar_version
sys.path.insert(0, os.path.join(ROOT, "tests", "common"))   # the module both reader suites share
from cdc_tables import (CUSTOMER_COLS, CUSTOMERS_TOPIC, EPOCH, ORDER_COLS, ORDERS_TOPIC, _fixture,  # noqa: E402
                        customer_row, decimal_b64, mirror, run_cdcflow, write_jsonl)
from spark_session import local_session  # noqa: E402
from test_newest_readers import (CDF_COLS, DELTA_KINDS, ICEBERG_KINDS, append_change_feed,  # noqa: E402
                                 arrow_rows, assert_rows, build_tables, customer_events, delta_commits,
                                 expected_rows, iceberg_metadata_json, iceberg_static, read_deltalake,
                                 read_duckdb, tuples, upsert_change_feed)

JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"


# ------------------------------------------------------------------ Spark

@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    try:
        import pyspark
    except ImportError:
        pytest.fail("pyspark is not installed in .venv-newest (scripts/setup.sh readers installs it)")
    jars = sorted(glob.glob(os.path.join(SPARK4_JARS, "*.jar")))
    delta, iceberg = spark4_jar_version("delta-spark_*"), spark4_jar_version("iceberg-spark-runtime-*")
    if not delta or not iceberg:
        pytest.fail(f"Spark 4's Delta/Iceberg jars are not in {SPARK4_JARS} (scripts/setup.sh readers fetches them)")
    if not os.environ.get("JAVA_HOME") and os.path.isdir(JAVA_HOME):
        os.environ["JAVA_HOME"] = JAVA_HOME
    session = local_session("cdcflow-spark4-readers", jars, tmp_path_factory.mktemp("spark4"))
    jvm = session.sparkContext._jvm
    # What the versions line names is what runs: the JVM's Spark, Delta and Iceberg.
    assert session.version == pyspark.__version__
    assert getattr(jvm.io.delta, "package").VERSION() == delta      # Scala's package object io.delta
    assert jvm.org.apache.iceberg.IcebergBuild.version() == iceberg
    print(f"spark {session.version}, delta-spark {delta}, iceberg {iceberg}, "
          f"java {jvm.java.lang.System.getProperty('java.version')}")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return build_tables(str(tmp_path_factory.mktemp("cdcflow-tables")))


def iceberg_catalog(spark, warehouse):
    """Name of a Spark catalog (Iceberg, type hadoop) over `warehouse`: cdcflow's --warehouse W
    --namespace N --table T is <name>.N.T.  Catalogs load when first used, so each warehouse gets
    one declared after the session started."""
    name = "ice_" + os.urandom(4).hex()
    spark.conf.set(f"spark.sql.catalog.{name}", "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"spark.sql.catalog.{name}.type", "hadoop")
    spark.conf.set(f"spark.sql.catalog.{name}.warehouse", "file://" + warehouse)
    return name


def iceberg_name(spark, tables, kind):
    return f"{iceberg_catalog(spark, tables['warehouse'])}.analytics.{os.path.basename(tables[kind])}"


def spark_dicts(df):
    return [r.asDict() for r in df.collect()]


def spark_rows(df, cols=None):
    cols = cols or df.columns
    return tuples(spark_dicts(df.select(*cols)), cols)


def spark_type(t):
    """The Spark SQL type name of an Arrow type, as DataFrame.dtypes spells it."""
    import pyarrow as pa
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz else "timestamp_ntz"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    names = {pa.int8(): "tinyint", pa.int16(): "smallint", pa.int32(): "int", pa.int64(): "bigint",
             pa.float32(): "float", pa.float64(): "double", pa.bool_(): "boolean", pa.date32(): "date"}
    return names.get(t, str(t))


def assert_same_types(df, table, what, nullability=False):
    """Spark's columns, their order and types (and, where the reader knows it, nullability) are
    the Arrow reader's."""
    assert df.dtypes == [(f.name, spark_type(f.type)) for f in table.schema], what
    if nullability:
        assert [(f.name, f.nullable) for f in df.schema.fields] == \
            [(f.name, f.nullable) for f in table.schema], what


def assert_same_as(df, table, what, nullability=False):
    """Every column of every row, and the types, as another reader reads them."""
    assert_same_types(df, table, what, nullability)
    assert_rows(spark_rows(df), arrow_rows(table), what)


# Filters whose answers depend on partition pruning and on the min/max statistics cdcflow writes.
KOELN = "K\u00f6ln/Porz=1 %, TX, USA"
MID_TS = EPOCH + datetime.timedelta(microseconds=1704103200123456 + 138 * 3600000001 + 1)
FILTERS = [
    (f"location = '{KOELN}'", lambda r: r["location"] == KOELN),
    ("customer_id BETWEEN 5 AND 9", lambda r: 5 <= r["customer_id"] <= 9),
    (f"registration_date >= TIMESTAMP '{MID_TS.isoformat(sep=' ')}'", lambda r: r["registration_date"] >= MID_TS),
]


def check_filters(df, model):
    for sql, pred in FILTERS:
        want = tuples((r for r in model if pred(r)), CUSTOMER_COLS)
        assert 0 < len(want) < len(model), sql          # a filter that keeps some rows, not all
        assert_rows(spark_rows(df.where(sql), CUSTOMER_COLS), want, sql)


# ------------------------------------------------------------------ Delta

@pytest.mark.parametrize("kind", DELTA_KINDS)
def test_delta_spark4(spark, tables, kind):
    cols, want = expected_rows(tables, kind)
    df = spark.read.format("delta").load(tables[kind])
    types = dict(df.dtypes)
    if kind == "delta/append":
        assert (types["total_amount"], types["order_date"], types["shipped_at"], types["is_gift"]) == \
            ("decimal(12,2)", "timestamp_ntz", "timestamp", "boolean")
    else:
        assert (types["customer_id"], types["lifetime_value"], types["registration_date"]) == \
            ("bigint", "double", "timestamp")
    assert_rows(spark_rows(df, cols), want, f"spark {kind}")
    assert_same_as(df, read_deltalake(tables[kind]), f"spark vs deltalake {kind}", nullability=True)
    assert_same_as(df, read_duckdb(f"SELECT * FROM delta_scan('{tables[kind]}')"), f"spark vs duckdb {kind}")


@pytest.mark.parametrize("kind", ["delta/append", "delta/upsert", "delta/partitioned", "delta/checkpoint",
                                  "delta/optimized"])
def test_delta_change_feed_spark4(spark, tables, kind):
    path = tables[kind]
    if kind == "delta/append":
        cols = ORDER_COLS + CDF_COLS
        want = tuples(append_change_feed(tables["orders"], delta_commits(path, ORDERS_TOPIC)), cols)
    else:
        cols = CUSTOMER_COLS + CDF_COLS
        want = tuples(upsert_change_feed(tables["customers"], delta_commits(path, CUSTOMERS_TOPIC)), cols)
    cdf = spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0).load(path)
    assert_rows(spark_rows(cdf, cols), want, f"spark change feed {kind}")
    if kind == "delta/optimized":
        # The compaction is a commit of its own that changes no data.
        hist = spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").collect()[0]
        assert (hist.version, hist.operation) == \
            (max(c[0] for c in delta_commits(path, CUSTOMERS_TOPIC)) + 1, "OPTIMIZE")
        assert spark.read.format("delta").option("readChangeFeed", "true") \
            .option("startingVersion", hist.version).load(path).count() == 0


def test_delta_time_travel_spark4(spark, tables):
    from deltalake import DeltaTable
    path = tables["delta/upsert"]
    commits = delta_commits(path, CUSTOMERS_TOPIC)
    assert len(commits) > 10
    for version, _, end in (commits[0], commits[len(commits) // 2]):
        df = spark.read.format("delta").option("versionAsOf", version).load(path)
        want = tuples(mirror(tables["customers"][:end]).values(), CUSTOMER_COLS)
        assert_rows(spark_rows(df, CUSTOMER_COLS), want, f"spark versionAsOf {version}")
        assert_same_as(df, DeltaTable(path, version=version).to_pyarrow_table(), f"deltalake version {version}")


def test_delta_partitioned_pruning_spark4(spark, tables):
    path = tables["delta/partitioned"]
    df = spark.read.format("delta").load(path)
    check_filters(df, list(mirror(tables["customers"]).values()))
    # The partition filter reads only that partition's files.
    koeln = df.where(f"location = '{KOELN}'").inputFiles()
    assert koeln and len(koeln) < len(df.inputFiles())
    assert all("location=K" in f for f in koeln), koeln


def test_zone_less_timestamps_agree_in_a_new_york_session(spark, tables):
    """PostgreSQL `timestamp` (no zone) reads as the same wall-clock time in Delta (timestamp_ntz)
    and Iceberg (timestamp) whatever the session time zone: Spark at America/New_York, beside the
    zone-aware column, which moves with the zone in both formats alike."""
    want = {r[0]: r[2] for r in expected_rows(tables, "delta/append")[1]}           # order_id -> order_date
    ice = iceberg_name(spark, tables, "iceberg/append")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        delta = spark.read.format("delta").load(tables["delta/append"])
        got_delta = {r.order_id: (r.order_date, r.shipped_at) for r in delta.select("order_id", "order_date",
                                                                                        "shipped_at").collect()}
        got_ice = {r.order_id: (r.order_date, r.shipped_at) for r in spark.table(ice).select(
            "order_id", "order_date", "shipped_at").collect()}
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert {k: v[0] for k, v in got_delta.items()} == want
    assert got_delta == got_ice
    assert any(v[1] is not None for v in got_delta.values())      # the zone-aware column was compared too


# ------------------------------------------------------------------ Iceberg

@pytest.mark.parametrize("kind", ICEBERG_KINDS)
def test_iceberg_spark4(spark, tables, kind):
    cols, want = expected_rows(tables, kind)
    name = iceberg_name(spark, tables, kind)
    df = spark.table(name)
    types = dict(df.dtypes)
    if kind == "iceberg/append":
        # Debezium's MicroTimestamp has no zone, its ZonedTimestamp does: Iceberg keeps the difference.
        assert (types["total_amount"], types["order_date"], types["shipped_at"]) == \
            ("decimal(12,2)", "timestamp_ntz", "timestamp")
    assert_rows(spark_rows(df, cols), want, f"spark {kind}")
    assert_same_as(df, iceberg_static(tables[kind]).scan().to_arrow(), f"spark vs pyiceberg {kind}",
                   nullability=True)
    assert_same_as(df, read_duckdb(f"SELECT * FROM iceberg_scan('{iceberg_metadata_json(tables[kind])}')"),
                   f"spark vs duckdb {kind}")
    if kind != "iceberg/append":
        # The retired rows are position deletes Spark had to apply (content 1), no equality deletes.
        kinds = {r.content: r.n for r in spark.sql(
            f"SELECT content, count(*) AS n FROM {name}.delete_files GROUP BY content").collect()}
        assert kinds.get(1, 0) > 0 and 2 not in kinds, kinds


def test_iceberg_partition_transforms_spark4(spark, tables):
    name = iceberg_name(spark, tables, "iceberg/partitioned")
    parts = [r.data_type for r in spark.sql(f"DESCRIBE TABLE {name}").collect()
             if r.col_name.startswith("Part ")]
    assert parts == ["location", "days(registration_date)", "bucket(4, customer_id)"], parts
    model = list(mirror(tables["customers"]).values())
    files = spark.sql(f"SELECT partition FROM {name}.files WHERE content = 0").collect()
    assert {f.partition.location for f in files} <= {r["location"] for r in model}
    assert all(0 <= f.partition.customer_id_bucket < 4 for f in files)
    check_filters(spark.table(name), model)


def test_iceberg_snapshots_and_time_travel_spark4(spark, tables):
    name = iceberg_name(spark, tables, "iceberg/upsert")
    snaps = spark.sql(f"SELECT snapshot_id, parent_id, summary FROM {name}.snapshots "
                      "ORDER BY committed_at, snapshot_id").collect()
    meta = iceberg_static(tables["iceberg/upsert"]).metadata
    assert [(s.snapshot_id, s.parent_id) for s in snaps] == \
        [(s.snapshot_id, s.parent_snapshot_id) for s in meta.snapshots]
    offsets = [int(s.summary[f"cdcflow.offsets.{CUSTOMERS_TOPIC}.0"]) for s in snaps]
    assert offsets == sorted(offsets) and offsets[-1] == len(tables["customers"])
    i = len(snaps) // 2
    want = tuples(mirror(tables["customers"][:offsets[i]]).values(), CUSTOMER_COLS)
    got = spark.sql(f"SELECT * FROM {name} VERSION AS OF {snaps[i].snapshot_id}")
    assert_rows(spark_rows(got, CUSTOMER_COLS), want, f"snapshot {i}")


def test_iceberg_merge_on_read_writes_then_cdcflow_resumes(spark, tmp_path):
    """Spark's merge-on-read DELETE, UPDATE and MERGE on a cdcflow upsert table (whose primary key
    is the table's identifier field) write position deletes that every reader applies; cdcflow then
    resumes and its key index finds the rows Spark moved: no key twice, Spark's own row stays."""
    events = customer_events(150)
    first, rest = events[:100], events[100:]
    src, wh = str(tmp_path / "customers.jsonl"), str(tmp_path / "iceberg")
    where = ("--warehouse", wh, "--namespace", "analytics", "--table", "customers", "--mode", "upsert",
             "--max-offsets-per-trigger", 50)
    write_jsonl(src, first)
    run_cdcflow("iceberg", src, str(tmp_path), *where)
    table_dir = os.path.join(wh, "analytics", "customers")
    name = f"{iceberg_catalog(spark, wh)}.analytics.customers"
    spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('write.delete.mode' = 'merge-on-read', "
              "'write.update.mode' = 'merge-on-read', 'write.merge.mode' = 'merge-on-read')")

    state = mirror(first)
    assert {1, 2, 3, 4} <= set(state)
    spark.sql(f"DELETE FROM {name} WHERE customer_id = 1")
    del state[1]
    assert spark.table(name).count() == len(state)
    spark.sql(f"UPDATE {name} SET email = 'spark@example.com' WHERE customer_id = 2")
    state[2] = dict(state[2], email="spark@example.com")
    # MERGE: key 4 matched (updated), key 999 a new row copying key 3's other columns.
    cols = spark.table(name).columns
    new = ", ".join({"customer_id": "999L", "email": "'merge@example.com'", "_source_lsn": "1L"}.get(c, c)
                    + f" AS {c}" for c in cols)
    upd = ", ".join(("'m4@example.com'" if c == "email" else c) + f" AS {c}" for c in cols)
    spark.sql(f"SELECT {new} FROM {name} WHERE customer_id = 3 UNION ALL "
              f"SELECT {upd} FROM {name} WHERE customer_id = 4").createOrReplaceTempView("merge_source")
    spark.sql(f"MERGE INTO {name} t USING merge_source s ON t.customer_id = s.customer_id "
              "WHEN MATCHED THEN UPDATE SET t.email = s.email WHEN NOT MATCHED THEN INSERT *")
    state[4] = dict(state[4], email="m4@example.com")
    state[999] = dict(state[3], customer_id=999, email="merge@example.com", _source_lsn=1)

    snaps = spark.sql(f"SELECT operation, summary FROM {name}.snapshots ORDER BY committed_at, snapshot_id") \
        .collect()[-3:]
    assert [s.operation for s in snaps] == ["delete", "overwrite", "overwrite"], snaps
    for s in snaps:                     # merge-on-read: position deletes, nothing rewritten, no equality deletes
        assert int(s.summary.get("added-position-deletes", 0)) > 0, s.summary
        assert int(s.summary.get("added-equality-deletes", 0)) == 0, s.summary
        assert int(s.summary.get("deleted-data-files", 0)) == 0, s.summary
    want = tuples(state.values(), CUSTOMER_COLS)
    assert_rows(spark_rows(spark.table(name), CUSTOMER_COLS), want, "spark after its merge-on-read writes")
    assert_rows(arrow_rows(iceberg_static(table_dir).scan().to_arrow(), CUSTOMER_COLS), want,
                "pyiceberg after spark's merge-on-read writes")

    write_jsonl(src, events)
    run_cdcflow("iceberg", src, str(tmp_path), *where)
    for e in rest:
        row = customer_row(e)
        if e["op"] == "d":
            state.pop(row["customer_id"], None)
        else:
            state[row["customer_id"]] = row
    assert 999 in state
    want = tuples(state.values(), CUSTOMER_COLS)
    spark.sql(f"REFRESH TABLE {name}")
    got = spark_rows(spark.table(name), CUSTOMER_COLS)
    assert_rows(got, want, "spark after cdcflow resumed")
    assert_rows(arrow_rows(iceberg_static(table_dir).scan().to_arrow(), CUSTOMER_COLS), want,
                "pyiceberg after cdcflow resumed")


# ------------------------------------------------------------------ a Delta table Spark maintains

# The columns of cdcflow's customers transform, as Spark declares them.
CUSTOMERS_DDL = ("customer_id BIGINT, email STRING, full_name STRING, location STRING, customer_tier STRING, "
                 "lifetime_value DOUBLE, registration_date TIMESTAMP, is_active BOOLEAN, total_orders INT, "
                 "_ingestion_timestamp TIMESTAMP, _source_system STRING, _cdc_operation STRING, "
                 "_pipeline_id STRING, _processed_timestamp TIMESTAMP, _event_timestamp_ms BIGINT, "
                 "_source_lsn BIGINT, _kafka_timestamp TIMESTAMP")


def spark_customer(key):
    """The row Spark inserts for key (CUSTOMER_COLS)."""
    return {"customer_id": key, "email": f"spark{key}@example.com", "full_name": f"Spark {key}",
            "location": ["Austin, TX, USA", "S\u00e3o Paulo, TX, USA"][key % 2],
            "lifetime_value": key * 10.25, "registration_date": datetime.datetime(2024, 1, key, 8, 30, 0, 123456),
            "is_active": key % 3 != 0, "_cdc_operation": "INSERT", "_source_lsn": key}


def spark_insert(spark, path, keys):
    def lit(v):
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        if isinstance(v, datetime.datetime):
            return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
        return str(v).lower() if isinstance(v, bool) else repr(v)
    cols = [c.split()[0] for c in CUSTOMERS_DDL.split(", ")]
    rows = []
    for k in keys:
        r = spark_customer(k)
        rows.append("(" + ", ".join(lit(r[c]) if c in r else "NULL" for c in cols) + ")")
    spark.sql(f"INSERT INTO delta.`{path}` VALUES {', '.join(rows)}")


def customer_event(tmpl, op, key, lsn):
    """An envelope-less customers event for key, Debezium's shape (tests/data/debezium)."""
    row = dict(tmpl["after"], customer_id=key, email=f"cdc{key}@example.com", first_name=f"F{lsn}",
               last_name=f"L{key}", city="K\u00f6ln", registration_date=1704103200123456 + lsn * 1000001,
               is_active=lsn % 2 == 0, lifetime_value=decimal_b64(lsn * 100 + key))
    e = copy.deepcopy(tmpl)
    e.update(op=op, before=row if op == "d" else None, after=None if op == "d" else row)
    e["source"]["lsn"] = lsn
    return e


@pytest.fixture
def spark_dv_table(spark, tmp_path):
    """A Delta table Spark created with deletion vectors on and maintained: two inserts, a DELETE
    (deletion vectors), OPTIMIZE (which folds them into a rewritten file) and a second DELETE, so
    a deletion vector is live when cdcflow takes over.  (path, key -> row Spark's table holds)."""
    path = str(tmp_path / "customers_dv")
    spark.sql(f"CREATE TABLE delta.`{path}` ({CUSTOMERS_DDL}) USING delta "
              "TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    spark_insert(spark, path, range(1, 7))
    spark_insert(spark, path, range(7, 13))
    spark.sql(f"DELETE FROM delta.`{path}` WHERE customer_id IN (2, 8)")
    spark.sql(f"OPTIMIZE delta.`{path}`")
    spark.sql(f"DELETE FROM delta.`{path}` WHERE customer_id = 5")
    hist = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").orderBy("version").collect()
    assert [h.operation for h in hist] == ["CREATE TABLE", "WRITE", "WRITE", "DELETE", "OPTIMIZE", "DELETE"]
    assert int(hist[3].operationMetrics["numDeletionVectorsAdded"]) > 0
    assert int(hist[4].operationMetrics["numDeletionVectorsRemoved"]) > 0
    assert int(hist[5].operationMetrics["numDeletionVectorsAdded"]) == 1
    # The newest commit's file carries the deletion vector: no rewrite, the row is only marked.
    with open(os.path.join(path, "_delta_log", "%020d.json" % hist[-1].version)) as f:
        adds = [a["add"] for a in map(json.loads, f) if "add" in a]
    assert len(adds) == 1 and adds[0].get("deletionVector"), adds
    state = {k: spark_customer(k) for k in range(1, 13) if k not in (2, 5, 8)}
    assert_rows(spark_rows(spark.read.format("delta").load(path), CUSTOMER_COLS),
                tuples(state.values(), CUSTOMER_COLS), "spark's own table")
    return path, state


@pytest.mark.parametrize("deletes", ["auto", "rewrite"])
def test_cdcflow_feeds_a_spark_maintained_table_with_deletion_vectors(spark, spark_dv_table, tmp_path, deletes):
    """cdcflow takes over a table Spark maintains with deletion vectors, in upsert mode: it must see
    that the rows behind a deletion vector are gone (a create of such a key inserts it once) and
    update or delete rows of the file that carries one without bringing the deleted rows back: with
    vectors of its own (auto: the table has them on) or by rewriting the files (rewrite)."""
    path, state = spark_dv_table
    tmpl = _fixture("customers_create_bare.json")
    events = [customer_event(tmpl, "u", 3, 1001),     # in the compacted file with the live deletion vector
              customer_event(tmpl, "d", 4, 1002),     # the same file
              customer_event(tmpl, "c", 5, 1003),     # deleted by that deletion vector
              customer_event(tmpl, "c", 8, 1004),     # deleted by one that OPTIMIZE folded in
              customer_event(tmpl, "u", 1, 1005),
              customer_event(tmpl, "c", 20, 1006),
              customer_event(tmpl, "c", 21, 1007),
              customer_event(tmpl, "u", 20, 1008)]
    src = str(tmp_path / "customers.jsonl")
    write_jsonl(src, events)
    run_cdcflow("delta", src, str(tmp_path), "--table-path", path, "--mode", "upsert",
                "--primary-key", "customer_id", "--max-offsets-per-trigger", 4, "--delta-deletes", deletes)
    for e in events:
        row = customer_row(e)
        if e["op"] == "d":
            state.pop(row["customer_id"])
        else:
            state[row["customer_id"]] = row
    got = spark_rows(spark.read.format("delta").load(path), CUSTOMER_COLS)
    assert_rows(got, tuples(state.values(), CUSTOMER_COLS), "spark after cdcflow fed its table")
    assert len({r[0] for r in got}) == len(got)
    # cdcflow's commits (after Spark's six) carry vectors of their own in auto mode, none in
    # rewrite mode; Spark read them above as its own
    ours = []
    for v in sorted(glob.glob(os.path.join(path, "_delta_log", "*.json")))[6:]:
        with open(v) as f:
            ours += [a for a in map(json.loads, f) if "add" in a and a["add"].get("deletionVector")]
    assert bool(ours) == (deletes == "auto")
