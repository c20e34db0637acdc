"""test_iceberg.py - Iceberg tables written by cdcflow, read by engines we did not write.

The tables come from build/tests/test_iceberg_sink (the C sink driven directly, no stack needed),
which keeps them under $CF_ICEBERG_TEST_DIR.  The expected rows are recomputed here from the same
event formula (make_event in tests/unit/test_iceberg_sink.c), then compared with what pyiceberg
and DuckDB's iceberg_scan read.  fastavro checks the manifests' Avro headers and field ids.
"""

import datetime
import glob
import json
import os
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, CDCFLOW, duckdb_conn

NKEYS = 50
TOPIC = "postgres.public.customers"
DRIVER = os.path.join(ROOT, "build", "tests", "test_iceberg_sink")
COLS = ["customer_id", "email", "full_name", "lifetime_value", "registration_date", "is_active",
        "total_orders", "_cdc_operation", "_source_lsn"]


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def event(i, extra=False):
    key = (i * 7919) % NKEYS
    row = {
        "customer_id": key,
        "email": f"user{key}@example.com",
        "full_name": None if i % 13 == 0 else f"name {i}",
        "lifetime_value": i * 0.25,
        "registration_date": datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        + datetime.timedelta(microseconds=1700000000000000 + i * 3600000000),
        "is_active": i % 2 == 0,
        "total_orders": i % 5,
        "_cdc_operation": "DELETE" if i % 9 == 8 else ("INSERT" if i < NKEYS else "UPDATE"),
        "_source_lsn": 1000 + i,
    }
    if extra:
        row["loyalty_tier"] = f"tier{i % 3}"
    return row


def expected_append(n):
    return sorted((tuple(event(i)[c] for c in COLS) for i in range(n)), key=lambda r: r[-1])


def expected_upsert(n):
    last = {}
    for i in range(n):
        e = event(i)
        last[e["customer_id"]] = e          # LSNs rise with i: the last event per key wins
    rows = [tuple(e[c] for c in COLS) for e in last.values() if e["_cdc_operation"] != "DELETE"]
    return sorted(rows, key=lambda r: r[-1])


def rows_of(arrow_table):
    d = arrow_table.select(COLS).to_pylist()
    return sorted((tuple(r[c] for c in COLS) for r in d), key=lambda r: r[-1])


def latest_metadata(table):
    hint = open(os.path.join(table, "metadata", "version-hint.text")).read().strip()
    return os.path.join(table, "metadata", f"v{hint}.metadata.json")


def static_table(table):
    from pyiceberg.table import StaticTable
    return StaticTable.from_metadata(latest_metadata(table))


def write_tables(root):
    """Build and run the C driver; it leaves append/, upsert/, partitioned/, evolve/, crash/,
    crash_upsert/ under root."""
    build = subprocess.run(["make", "-s", "-C", ROOT, "all", "build/tests/test_iceberg_sink"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, CF_ICEBERG_TEST_DIR=root)
    run = subprocess.run([DRIVER], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return root


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Tables the read-only tests share."""
    return write_tables(str(tmp_path_factory.mktemp("iceberg")))


@pytest.fixture
def fresh_tables(tmp_path):
    """Tables of its own for a test that changes them."""
    return write_tables(str(tmp_path))


def ddb_rows(path):
    con = duckdb_conn()
    try:
        # TIMESTAMPTZ as epoch microseconds: DuckDB's Python zone conversion needs pytz.
        sel = ", ".join("epoch_us(registration_date) AS registration_date" if c == "registration_date"
                        else c for c in COLS)
        rel = con.sql(f"SELECT {sel} FROM iceberg_scan('{path}')")
        names = rel.columns
        out = [dict(zip(names, r)) for r in rel.fetchall()]
        for r in out:
            r["registration_date"] = EPOCH + datetime.timedelta(microseconds=r["registration_date"])
    finally:
        con.close()
    return sorted((tuple(r[c] for c in COLS) for r in out), key=lambda r: r[-1])


def normalize_ts(rows):
    # DuckDB returns TIMESTAMPTZ in the session zone; compare as UTC instants.
    return [tuple(v.astimezone(datetime.timezone.utc) if isinstance(v, datetime.datetime) else v
                  for v in r) for r in rows]


def test_append_rows_match(tables):
    t = os.path.join(tables, "append")
    assert rows_of(static_table(t).scan().to_arrow()) == expected_append(300)
    assert normalize_ts(ddb_rows(t)) == expected_append(300)


def test_upsert_rows_match(tables):
    t = os.path.join(tables, "upsert")
    want = expected_upsert(410)
    assert rows_of(static_table(t).scan().to_arrow()) == want
    assert normalize_ts(ddb_rows(t)) == want


def test_upsert_uses_position_deletes_and_identifier_fields(tables):
    tbl = static_table(os.path.join(tables, "upsert"))
    md = json.load(open(latest_metadata(os.path.join(tables, "upsert"))))
    assert md["format-version"] == 2
    schema = md["schemas"][-1]
    assert schema["identifier-field-ids"] == [1]
    assert schema["fields"][0]["required"] is True
    tasks = list(tbl.scan().plan_files())
    deletes = [d for t in tasks for d in t.delete_files]
    assert deletes, "updates should have produced position delete files"
    assert all(int(d.content) == 1 for d in deletes)      # position deletes, never equality
    summary = md["snapshots"][-1]["summary"]
    assert summary[f"cdcflow.offsets.{TOPIC}.0"] == "410"
    assert int(summary["total-position-deletes"]) > 0


def test_merged_manifests_read_back(tables):
    # 130 commits: the sink folded old manifests into merged ones (EXISTING entries).
    t = os.path.join(tables, "many_commits")
    tbl = static_table(t)
    assert len(tbl.metadata.snapshots) == 130
    manifests = tbl.current_snapshot().manifests(tbl.io)
    assert len(manifests) < 100
    assert any(m.existing_files_count for m in manifests)
    assert rows_of(tbl.scan().to_arrow()) == expected_upsert(390)
    assert normalize_ts(ddb_rows(t)) == expected_upsert(390)


def test_int_into_long_and_long_string_bounds(tables):
    tbl = static_table(os.path.join(tables, "promote"))
    a = tbl.scan().to_arrow()
    assert sorted(a["n"].to_pylist()) == [7, 5000000000]
    # the cut lower bound and missing upper bound still let filters find the row
    assert tbl.scan(row_filter="txt > 'xxx'").to_arrow()["n"].to_pylist() == [7]


def test_time_travel(tables):
    t = os.path.join(tables, "upsert")
    tbl = static_table(t)
    first = tbl.metadata.snapshots[0]
    assert first.summary[f"cdcflow.offsets.{TOPIC}.0"] == "120"
    assert rows_of(tbl.scan(snapshot_id=first.snapshot_id).to_arrow()) == expected_upsert(120)
    # DuckDB reads an older metadata file directly.
    v1 = os.path.join(t, "metadata", "v1.metadata.json")
    assert normalize_ts(ddb_rows(v1)) == expected_upsert(120)
    # cdcflow's own time travel agrees.
    out = subprocess.run([CDCFLOW, "scan", t, "--snapshot", str(first.snapshot_id), "--format", "jsonl",
                          "--columns", "customer_id,_source_lsn"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = sorted(json.loads(line)["_source_lsn"] for line in out.stdout.splitlines())
    assert got == sorted(r[-1] for r in expected_upsert(120))


def test_schema_evolution(tables):
    t = os.path.join(tables, "evolve")
    arrow = static_table(t).scan().to_arrow()
    assert arrow.schema.names[-1] == "loyalty_tier"
    got = sorted(arrow.select(["_source_lsn", "loyalty_tier"]).to_pylist(), key=lambda r: r["_source_lsn"])
    assert [r["loyalty_tier"] for r in got] == [None] * 40 + [f"tier{i % 3}" for i in range(40, 100)]
    md = json.load(open(latest_metadata(t)))
    assert len(md["schemas"]) == 2 and md["last-column-id"] == 10
    con = duckdb_conn()
    try:
        # An aggregate FILTER, not WHERE: DuckDB's iceberg_scan pushes `IS NULL` down into files
        # written before the column existed and drops their rows, on pyiceberg's evolved tables too.
        nulls = con.sql(f"SELECT count(*) FILTER (WHERE loyalty_tier IS NULL) FROM iceberg_scan('{t}')").fetchone()[0]
    finally:
        con.close()
    assert nulls == 40


def test_partitioned_bucket_and_day_match_pyiceberg(tables):
    from pyiceberg.transforms import BucketTransform, DayTransform
    from pyiceberg.types import LongType, TimestamptzType

    t = os.path.join(tables, "partitioned")
    tbl = static_table(t)
    assert rows_of(tbl.scan().to_arrow()) == expected_upsert(200)
    spec = tbl.spec()
    assert [f.name for f in spec.fields] == ["registration_date_day", "customer_id_bucket"]
    bucket = BucketTransform(4).transform(LongType())
    day = DayTransform().transform(TimestamptzType())
    checked = 0
    deletes = 0
    for task in tbl.scan().plan_files():
        part = task.file.partition
        # Position deletes are scoped to their data file's partition (spec scan planning rules).
        for d in task.delete_files:
            assert d.partition == part and d.spec_id == task.file.spec_id
            deletes += 1
        data = pq.read_table(task.file.file_path.replace("file://", ""))
        for key, ts in zip(data["customer_id"].to_pylist(), data["registration_date"].to_pylist()):
            micros = int((ts - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc))
                         / datetime.timedelta(microseconds=1))
            assert bucket(key) == part[1]
            assert day(micros) == part[0]
            checked += 1
    assert checked >= len(expected_upsert(200))
    assert deletes > 0
    assert normalize_ts(ddb_rows(t)) == expected_upsert(200)


def test_manifest_headers_keep_field_ids(tables):
    import fastavro

    t = os.path.join(tables, "partitioned")
    lists = glob.glob(os.path.join(t, "metadata", "snap-*.avro"))
    manifests = [p for p in glob.glob(os.path.join(t, "metadata", "*.avro")) if p not in lists]
    assert lists and manifests
    with open(lists[0], "rb") as f:
        r = fastavro.reader(f)
        fields = {x["name"]: x for x in r.writer_schema["fields"]}
        assert fields["manifest_path"]["field-id"] == 500
        assert fields["added_snapshot_id"]["field-id"] == 503
        assert r.metadata["format-version"] == "2"
        entries = list(r)
        assert len(entries) >= 1
    # Partition summaries: bounds of each manifest's day and bucket values.
    tbl = static_table(t)
    for mf in tbl.current_snapshot().manifests(tbl.io):
        assert len(mf.partitions) == 2
        files = [e.data_file for e in mf.fetch_manifest_entry(tbl.io, discard_deleted=True)]
        for k, summary in enumerate(mf.partitions):
            values = [f.partition[k] for f in files]
            assert summary.contains_null == any(v is None for v in values)
            if files:
                lo = int.from_bytes(summary.lower_bound, "little", signed=True)
                hi = int.from_bytes(summary.upper_bound, "little", signed=True)
                assert (lo, hi) == (min(values), max(values))
    with open(lists[0], "rb") as f:
        assert len(list(fastavro.reader(f))) >= 1
    with open(manifests[0], "rb") as f:
        r = fastavro.reader(f)
        fields = {x["name"]: x for x in r.writer_schema["fields"]}
        assert fields["status"]["field-id"] == 0
        df = {x["name"]: x for x in fields["data_file"]["type"]["fields"]}
        assert df["file_path"]["field-id"] == 100
        part = {x["name"]: x for x in df["partition"]["type"]["fields"]}
        assert part["registration_date_day"]["field-id"] == 1000
        assert part["customer_id_bucket"]["field-id"] == 1001
        assert r.metadata["content"] in ("data", "deletes")
        assert json.loads(r.metadata["partition-spec"])[1]["transform"] == "bucket[4]"
        entries = list(r)
        assert entries and all(e["data_file"]["file_format"] == "PARQUET" for e in entries)


def test_column_bounds_are_single_value_serialized(tables):
    from pyiceberg.conversions import from_bytes

    tbl = static_table(os.path.join(tables, "append"))
    schema = tbl.schema()
    for task in tbl.scan().plan_files():
        f = task.file
        data = pq.read_table(f.file_path.replace("file://", ""))
        for name in ("customer_id", "email", "lifetime_value", "_source_lsn"):
            fid = schema.find_field(name).field_id
            col = [v for v in data[name].to_pylist() if v is not None]
            assert from_bytes(schema.find_type(name), f.lower_bounds[fid]) == min(col)
            assert from_bytes(schema.find_type(name), f.upper_bounds[fid]) == max(col)
            assert f.value_counts[fid] == data.num_rows
        fid = schema.find_field("full_name").field_id
        assert f.null_value_counts[fid] == data["full_name"].null_count


def test_crash_and_restart_is_exactly_once(tables):
    t = os.path.join(tables, "crash")
    assert rows_of(static_table(t).scan().to_arrow()) == expected_append(600)
    t = os.path.join(tables, "crash_upsert")
    assert rows_of(static_table(t).scan().to_arrow()) == expected_upsert(600)
    assert normalize_ts(ddb_rows(t)) == expected_upsert(600)


def test_optimize_then_expire(fresh_tables):
    t = os.path.join(fresh_tables, "upsert")
    want = expected_upsert(410)
    nfiles_before = len(glob.glob(os.path.join(t, "data", "*.parquet")))
    r = subprocess.run([CDCFLOW, "optimize", t], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tbl = static_table(t)
    assert tbl.current_snapshot().summary.operation.value == "replace"
    assert tbl.current_snapshot().summary[f"cdcflow.offsets.{TOPIC}.0"] == "410"
    tasks = list(tbl.scan().plan_files())
    assert len(tasks) == 1 and not tasks[0].delete_files
    assert rows_of(tbl.scan().to_arrow()) == want
    assert normalize_ts(ddb_rows(t)) == want

    r = subprocess.run([CDCFLOW, "expire-snapshots", t, "--older-than", "0s"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tbl = static_table(t)
    assert len(tbl.metadata.snapshots) == 1
    assert rows_of(tbl.scan().to_arrow()) == want
    assert normalize_ts(ddb_rows(t)) == want
    assert len(glob.glob(os.path.join(t, "data", "*.parquet"))) == 1 < nfiles_before
    h = subprocess.run([CDCFLOW, "history", t], capture_output=True, text=True)
    assert h.returncode == 0 and "replace" in h.stdout and "(current)" in h.stdout

    # partitioned: one file per partition afterwards, deletes folded, rows unchanged
    t = os.path.join(fresh_tables, "partitioned")
    r = subprocess.run([CDCFLOW, "optimize", t], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tbl = static_table(t)
    tasks = list(tbl.scan().plan_files())
    parts = [tuple(task.file.partition) for task in tasks]
    assert len(parts) == len(set(parts)) and not any(task.delete_files for task in tasks)
    assert rows_of(tbl.scan().to_arrow()) == expected_upsert(200)
    assert normalize_ts(ddb_rows(t)) == expected_upsert(200)


def test_expire_trims_metadata_versions(fresh_tables):
    t = os.path.join(fresh_tables, "append")
    md_path = latest_metadata(t)
    md = json.load(open(md_path))
    version = int(open(os.path.join(t, "metadata", "version-hint.text")).read())
    # Another tool lowers previous-versions-max in a new metadata version.
    md["properties"]["write.metadata.previous-versions-max"] = "1"
    md["metadata-log"] = md["metadata-log"][-1:]
    new = os.path.join(t, "metadata", f"v{version + 1}.metadata.json")
    json.dump(md, open(new, "w"))
    # Orphans of a writer that died before committing: an old one goes, a fresh one (maybe a
    # commit in flight) stays.
    old_orphan = os.path.join(t, "data", "dead-writer.parquet")
    fresh_orphan = os.path.join(t, "data", "in-flight.parquet")
    for p in (old_orphan, fresh_orphan):
        open(p, "wb").write(b"PAR1")
    two_hours_ago = os.path.getmtime(old_orphan) - 7200
    os.utime(old_orphan, (two_hours_ago, two_hours_ago))
    r = subprocess.run([CDCFLOW, "expire-snapshots", t, "--older-than", "0s", "--retain-last", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(old_orphan) and os.path.exists(fresh_orphan)
    left = sorted(os.path.basename(p) for p in glob.glob(os.path.join(t, "metadata", "v*.metadata.json")))
    assert len(left) == 2, left
    tbl = static_table(t)
    assert len(tbl.metadata.snapshots) == 2
    assert rows_of(tbl.scan().to_arrow()) == expected_append(300)


def test_commands_have_help():
    for cmd in (["scan"], ["history"], ["optimize"], ["expire-snapshots"]):
        r = subprocess.run([CDCFLOW] + cmd + ["--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "Usage" in r.stdout, cmd


# ------------------------------------------------ through the pipeline: cdcflow iceberg --source file:

FIXTURE = os.path.join(ROOT, "tests", "data", "debezium", "customers_create_bare.json")


def pipeline_event(i, nkeys=20):
    """Debezium event i for the customers table (from the captured fixture's shape)."""
    tmpl = json.load(open(FIXTURE))
    key = (i * 7) % nkeys + 1
    op = "d" if i % 9 == 8 and i >= nkeys else ("c" if i < nkeys else "u")
    row = dict(tmpl["after"], customer_id=key, email=f"user{key}@example.com", first_name=f"F{i}",
               last_name=f"L{key}", is_active=i % 2 == 0)
    tmpl.update(op=op, before=row if op == "d" else None, after=None if op == "d" else row)
    tmpl["source"]["lsn"] = 24000000 + i
    return tmpl


def write_events(path, start, stop):
    with open(path, "a") as f:
        for i in range(start, stop):
            f.write(json.dumps(pipeline_event(i)) + "\n")


def pipeline_expected_upsert(n):
    last = {}
    for i in range(n):
        e = pipeline_event(i)
        row = e["after"] or e["before"]
        last[row["customer_id"]] = (e["op"], row, 24000000 + i)
    return sorted((k, f"{r['first_name']} {r['last_name']}", r["email"], lsn)
                  for k, (op, r, lsn) in last.items() if op != "d")


def run_pipeline(events, warehouse, mode, *extra, timeout=120):
    cmd = [CDCFLOW, "iceberg", "--source", f"file:{events}", "--available-now", "--warehouse", warehouse,
           "--namespace", "analytics", "--table", "customers", "--mode", mode, "--metrics-port", "0",
           "--checkpoint-location", os.path.join(warehouse, "_ckpt"), "--log-level", "warn", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def pipeline_rows(table):
    a = static_table(table).scan().to_arrow().select(["customer_id", "full_name", "email", "_source_lsn"])
    return sorted(tuple(r.values()) for r in a.to_pylist())


def test_pipeline_upsert_exactly_once(tmp_path):
    events, wh = str(tmp_path / "events.jsonl"), str(tmp_path / "wh")
    table = os.path.join(wh, "analytics", "customers")
    write_events(events, 0, 100)
    r = run_pipeline(events, wh, "upsert")
    assert r.returncode == 0, r.stderr
    assert pipeline_rows(table) == pipeline_expected_upsert(100)
    # More events later: only the new ones are applied.
    write_events(events, 100, 250)
    r = run_pipeline(events, wh, "upsert", "--max-offsets-per-trigger", "40")
    assert r.returncode == 0, r.stderr
    want = pipeline_expected_upsert(250)
    assert pipeline_rows(table) == want
    tbl = static_table(table)
    assert tbl.current_snapshot().summary["cdcflow.offsets.postgres.public.customers.0"] == "250"
    nsnap = len(tbl.metadata.snapshots)
    assert nsnap == 1 + 4                     # 150 events in batches of 40
    # Nothing new: no new snapshot, same rows.
    r = run_pipeline(events, wh, "upsert")
    assert r.returncode == 0, r.stderr
    assert len(static_table(table).metadata.snapshots) == nsnap
    con = duckdb_conn()
    try:
        got = sorted(con.sql(f"SELECT customer_id, full_name, email, _source_lsn FROM iceberg_scan('{table}')").fetchall())
    finally:
        con.close()
    assert got == want


def test_pipeline_killed_and_restarted(tmp_path):
    import signal
    import time

    events, wh = str(tmp_path / "events.jsonl"), str(tmp_path / "wh")
    table = os.path.join(wh, "analytics", "customers")
    n = 3000
    write_events(events, 0, n)
    kills = 0
    for delay in (0.05, 0.15, 0.3, 0.5):
        p = subprocess.Popen([CDCFLOW, "iceberg", "--source", f"file:{events}", "--available-now",
                              "--warehouse", wh, "--namespace", "analytics", "--table", "customers",
                              "--mode", "append", "--metrics-port", "0", "--max-offsets-per-trigger", "50",
                              "--checkpoint-location", os.path.join(wh, "_ckpt"), "--log-level", "error"])
        time.sleep(delay)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
    r = run_pipeline(events, wh, "append", "--max-offsets-per-trigger", "500")
    assert r.returncode == 0, r.stderr
    a = static_table(table).scan().to_arrow()
    lsns = sorted(a["_source_lsn"].to_pylist())
    assert lsns == [24000000 + i for i in range(n)]      # every event once: none lost, none twice
    assert kills >= 1


def test_cdcflow_reads_tables_pyiceberg_wrote(tmp_path):
    """Our manifest/Avro/Parquet readers on another writer's files: pyiceberg appends twice and
    deletes (copy-on-write) into a partitioned table; cdcflow scan prints the same rows."""
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import (BooleanType, DateType, DoubleType, IntegerType, LongType, NestedField,
                                 StringType, TimestamptzType)

    cat = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/cat.db", warehouse=f"file://{tmp_path}/wh")
    cat.create_namespace("ns")
    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "name", StringType()),
                    NestedField(3, "v", DoubleType()), NestedField(4, "ts", TimestamptzType()),
                    NestedField(5, "d", DateType()), NestedField(6, "ok", BooleanType()),
                    NestedField(7, "n", IntegerType()), identifier_field_ids=[1])
    spec = PartitionSpec(PartitionField(source_id=6, field_id=1000, transform=IdentityTransform(), name="ok"))
    t = cat.create_table("ns.t", schema=schema, partition_spec=spec)
    rows = [{"id": i, "name": None if i % 5 == 0 else f"n{i}", "v": i * 1.5,
             "ts": EPOCH + datetime.timedelta(days=19723, hours=i),
             "d": datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 10), "ok": i % 2 == 0, "n": i}
            for i in range(40)]
    arrow = pa.Table.from_pylist(rows, schema=t.schema().as_arrow())
    t.append(arrow)
    t.append(arrow.slice(30, 10).set_column(0, arrow.schema.field("id"), pa.array(range(100, 110), pa.int64())))
    t.delete("id < 5")
    t = cat.load_table("ns.t")
    loc = t.location().replace("file://", "")
    # Present it in the Hadoop layout cdcflow opens: vN.metadata.json + version-hint.text.
    shutil.copy(t.metadata_location.replace("file://", ""), os.path.join(loc, "metadata", "v1.metadata.json"))
    open(os.path.join(loc, "metadata", "version-hint.text"), "w").write("1")

    r = subprocess.run([CDCFLOW, "scan", loc, "--format", "jsonl"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = sorted((o["id"], o["name"], o["v"], o["n"], o["ok"]) for o in map(json.loads, r.stdout.splitlines()))
    want = sorted((o["id"], o["name"], o["v"], o["n"], o["ok"]) for o in t.scan().to_arrow().to_pylist())
    assert len(want) == 45 and got == want
    h = subprocess.run([CDCFLOW, "history", loc], capture_output=True, text=True)
    assert h.returncode == 0 and h.stdout.count("\n") == 1 + len(t.metadata.snapshots)
