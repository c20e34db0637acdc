"""test_iceberg_types.py - uuid and decimal columns, column bounds, NaN counts, column sizes and the
year/month/hour/truncate/uuid-identity partition transforms of cdcflow's Iceberg tables, checked by
readers we did not write.

The tables come from build/tests/test_iceberg_types (the C sink driven directly, no stack needed),
which keeps them under $CF_ICEBERG_TEST_DIR.  The rows are recomputed here from the same formula
(make_row in tests/unit/test_iceberg_types.c); pyiceberg's own transforms and single-value
decoding (from_bytes) are the oracle for partitions and bounds; fastavro reads the manifests raw.
"""

import datetime
import decimal
import glob
import math
import os
import subprocess
import uuid

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, duckdb_conn

DRIVER = os.path.join(ROOT, "build", "tests", "test_iceberg_types")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
NAMES = ["alpha", "\u00e9mile", "gamma"]
COLS = ["id", "u", "big", "small", "f", "ts", "d", "name", "_cdc_operation", "_source_lsn"]


def make_row(i, gen=0):
    mag = (60 - i if i < 60 else i - 60) * 123456789012345678
    f = None if i % 23 == 0 else (math.nan if i % 17 == 0 else i * 0.5)
    return {
        "id": i,
        "u": uuid.UUID(f"{(i * 2654435761) % 2**32:08x}-{i:04x}-4000-8000-{i * 7919:012x}"),
        "big": decimal.Decimal(f"{'-' if i < 60 else ''}{mag}.{(i * 37) % 10000:04d}"),
        "small": decimal.Decimal((i - 60) * 12345).scaleb(-2),
        "f": f,
        "ts": EPOCH + datetime.timedelta(microseconds=1500000000000000 + i * (11 * 86400 + 5 * 3600) * 1000000),
        "d": datetime.date(1970, 1, 1) + datetime.timedelta(days=17000 + i * 13),
        "name": f"{NAMES[i % 3]}{i}",
        "_cdc_operation": "UPDATE" if gen else "INSERT",
        "_source_lsn": 1000 + i + gen * 10000,
    }


def key(row):
    # NaN != NaN: compare floats by their text so rows with NaN still match.
    return tuple(repr(v) if isinstance(v, float) else v for v in (row[c] for c in COLS))


def expected(n, gen=0):
    return sorted(key(make_row(i, gen)) for i in range(n))


def pyiceberg_rows(tbl, row_filter=None):
    arrow = tbl.scan(row_filter=row_filter).to_arrow() if row_filter is not None else tbl.scan().to_arrow()
    out = []
    for r in arrow.select(COLS).to_pylist():
        r["u"] = uuid.UUID(bytes=r["u"])          # pyiceberg hands uuid columns over as 16 bytes
        out.append(key(r))
    return sorted(out)


def duckdb_rows(table, where=""):
    con = duckdb_conn()
    try:
        sel = ", ".join("epoch_us(ts) AS ts" if c == "ts" else c for c in COLS)
        rel = con.sql(f"SELECT {sel} FROM iceberg_scan('{table}') {where}")
        rows = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()
    for r in rows:
        r["ts"] = EPOCH + datetime.timedelta(microseconds=r["ts"])
    return sorted(key(r) for r in rows)


def read_file(path):
    # ParquetFile, not read_table: the latter would take key=value directories for hive partitions.
    return pq.ParquetFile(path.replace("file://", "")).read()


def static_table(table):
    from pyiceberg.table import StaticTable
    hint = open(os.path.join(table, "metadata", "version-hint.text")).read().strip()
    return StaticTable.from_metadata(os.path.join(table, "metadata", f"v{hint}.metadata.json"))


def write_tables(root):
    build = subprocess.run(["make", "-s", "-C", ROOT, "all", "build/tests/test_iceberg_types"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([DRIVER], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, CF_ICEBERG_TEST_DIR=root))
    assert run.returncode == 0, run.stdout + run.stderr
    return root


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Tables the read-only tests share."""
    return write_tables(str(tmp_path_factory.mktemp("iceberg_types")))


@pytest.fixture
def fresh_tables(tmp_path):
    """Tables of its own for a test that changes them (a copy would not do: metadata holds
    absolute paths, so a copy's files are the original's)."""
    return write_tables(str(tmp_path))


def test_types_declared_and_rows_read(tables):
    t = os.path.join(tables, "types")
    tbl = static_table(t)
    types = {f.name: str(f.field_type) for f in tbl.schema().fields}
    assert types["u"] == "uuid"
    assert types["big"] == "decimal(30, 4)"
    assert types["small"] == "decimal(10, 2)"
    assert pyiceberg_rows(tbl) == expected(120)
    assert duckdb_rows(t) == expected(120)
    # The data files carry the Parquet types those Iceberg types call for.
    f = next(task.file.file_path for task in tbl.scan().plan_files())
    schema = pq.read_schema(f.replace("file://", ""))
    assert str(schema.field("u").type) in ("fixed_size_binary[16]", "extension<arrow.uuid>")
    assert str(schema.field("big").type) == "decimal128(30, 4)"


def test_bounds_decode_to_each_files_min_max(tables):
    from pyiceberg.conversions import from_bytes

    tbl = static_table(os.path.join(tables, "types"))
    schema = tbl.schema()
    files = [task.file for task in tbl.scan().plan_files()]
    assert len(files) == 2
    for f in files:
        data = read_file(f.file_path)
        for name in ("u", "big", "small", "id", "ts", "d", "name"):
            fid = schema.find_field(name).field_id
            col = [v for v in data[name].to_pylist() if v is not None]
            lo = from_bytes(schema.find_type(name), f.lower_bounds[fid])
            hi = from_bytes(schema.find_type(name), f.upper_bounds[fid])
            if name == "u":
                # 16 raw bytes, ordered as unsigned bytes (as pyiceberg's evaluators compare them)
                assert len(f.lower_bounds[fid]) == 16
                col = [bytes(v) for v in col]
            if name == "ts":
                col = [int((v - EPOCH) / datetime.timedelta(microseconds=1)) for v in col]
            if name == "d":
                col = [(v - datetime.date(1970, 1, 1)).days for v in col]
            assert (lo, hi) == (min(col), max(col)), name


def test_filters_on_uuid_and_decimal_columns(tables):
    from pyiceberg.expressions import EqualTo, GreaterThan, LessThan

    t = os.path.join(tables, "types")
    tbl = static_table(t)
    # Bounds prune: the negative half of `big` lives in one file, the positive in the other.
    pos = tbl.scan(row_filter=GreaterThan("big", decimal.Decimal("1.0000")))
    assert len(list(pos.plan_files())) == 1
    want = sorted(k for k in expected(120) if k[2] > 1)
    assert pyiceberg_rows(tbl, GreaterThan("big", decimal.Decimal("1.0000"))) == want
    assert duckdb_rows(t, "WHERE big > 1") == want
    neg = tbl.scan(row_filter=LessThan("small", decimal.Decimal("-0.01")))
    assert len(list(neg.plan_files())) == 1
    for i in (0, 59, 60, 119):
        u = make_row(i)["u"]
        assert pyiceberg_rows(tbl, EqualTo("u", u)) == [key(make_row(i))]
        assert duckdb_rows(t, f"WHERE u = '{u}'") == [key(make_row(i))]
    # A uuid outside every file's bounds plans no file at all.
    assert list(tbl.scan(row_filter=EqualTo("u", uuid.UUID(int=2**128 - 1))).plan_files()) == []


def test_nan_counts_and_column_sizes(tables):
    import fastavro

    t = os.path.join(tables, "types")
    tbl = static_table(t)
    schema = tbl.schema()
    fid_f = schema.find_field("f").field_id
    total_nans = 0
    for task in tbl.scan().plan_files():
        f = task.file
        data = read_file(f.file_path)
        nans = sum(1 for v in data["f"].to_pylist() if v is not None and math.isnan(v))
        assert f.nan_value_counts == {fid_f: nans}      # float/double columns only
        total_nans += nans
        assert set(f.column_sizes) == {fl.field_id for fl in schema.fields}
        assert all(v > 0 for v in f.column_sizes.values())
        assert sum(f.column_sizes.values()) < f.file_size_in_bytes
        # column_sizes are the column chunks' compressed sizes as Parquet's footer states them
        meta = pq.ParquetFile(f.file_path.replace("file://", "")).metadata
        for j, fl in enumerate(schema.fields):
            chunks = sum(meta.row_group(g).column(j).total_compressed_size for g in range(meta.num_row_groups))
            assert f.column_sizes[fl.field_id] == chunks, fl.name
    assert total_nans == sum(1 for i in range(120) if i % 17 == 0 and i % 23 != 0)
    # The same maps straight from the manifest's Avro records.
    lists = glob.glob(os.path.join(t, "metadata", "snap-*.avro"))
    manifests = [p for p in glob.glob(os.path.join(t, "metadata", "*.avro")) if p not in lists]
    seen = 0
    for m in manifests:
        with open(m, "rb") as fh:
            for e in fastavro.reader(fh):
                df = e["data_file"]
                nan_map = {kv["key"]: kv["value"] for kv in df["nan_value_counts"]}
                size_map = {kv["key"]: kv["value"] for kv in df["column_sizes"]}
                assert list(nan_map) == [fid_f]
                assert len(size_map) == len(schema.fields)
                seen += 1
    assert seen >= 2


def data_files(tbl):
    return [task.file for task in tbl.scan().plan_files()]


def micros(ts):
    return int((ts - EPOCH) / datetime.timedelta(microseconds=1))


def test_year_month_partitions_match_pyiceberg(tables):
    from pyiceberg.transforms import MonthTransform, YearTransform
    from pyiceberg.types import DateType, TimestamptzType

    t = os.path.join(tables, "part_time")
    tbl = static_table(t)
    assert [(f.name, str(f.transform)) for f in tbl.spec().fields] == [("ts_year", "year"), ("d_month", "month")]
    assert pyiceberg_rows(tbl) == expected(120)
    assert duckdb_rows(t) == expected(120)
    year = YearTransform().transform(TimestamptzType())
    month = MonthTransform().transform(DateType())
    checked = 0
    for f in data_files(tbl):
        data = read_file(f.file_path)
        for ts, d in zip(data["ts"].to_pylist(), data["d"].to_pylist()):
            assert year(micros(ts)) == f.partition[0]
            assert month((d - datetime.date(1970, 1, 1)).days) == f.partition[1]
            checked += 1
    assert checked == 120
    # Partition pruning on the year: 2019 only.
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan
    lo = datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc).isoformat()
    hi = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc).isoformat()
    flt = And(GreaterThanOrEqual("ts", lo), LessThan("ts", hi))
    want = sorted(k for k in expected(120) if k[5].year == 2019)
    assert pyiceberg_rows(tbl, flt) == want
    assert all(f.partition[0] == 49 for f in (task.file for task in tbl.scan(row_filter=flt).plan_files()))


def test_hour_partitions_match_pyiceberg(tables):
    from pyiceberg.transforms import HourTransform
    from pyiceberg.types import TimestamptzType

    t = os.path.join(tables, "part_hour")
    tbl = static_table(t)
    assert [str(f.transform) for f in tbl.spec().fields] == ["hour"]
    assert pyiceberg_rows(tbl) == expected(40)
    assert duckdb_rows(t) == expected(40)
    hour = HourTransform().transform(TimestamptzType())
    files = data_files(tbl)
    assert len(files) == 40
    for f in files:
        data = read_file(f.file_path)
        assert [hour(micros(ts)) for ts in data["ts"].to_pylist()] == [f.partition[0]] * data.num_rows
        # Readers find nothing in the path; Java's layout is used anyway: ts_hour=yyyy-MM-dd-HH
        ts = data["ts"].to_pylist()[0]
        assert f"/ts_hour={ts:%Y-%m-%d-%H}/" in f.file_path


def test_truncate_partitions_match_pyiceberg(tables):
    from pyiceberg.transforms import TruncateTransform
    from pyiceberg.types import LongType, StringType

    t = os.path.join(tables, "part_trunc")
    tbl = static_table(t)
    assert [str(f.transform) for f in tbl.spec().fields] == ["truncate[10]", "truncate[2]"]
    assert pyiceberg_rows(tbl) == expected(120)
    assert duckdb_rows(t) == expected(120)
    tid = TruncateTransform(10).transform(LongType())
    tname = TruncateTransform(2).transform(StringType())
    values = set()
    for f in data_files(tbl):
        data = read_file(f.file_path)
        for i, name in zip(data["id"].to_pylist(), data["name"].to_pylist()):
            assert (tid(i), tname(name)) == (f.partition[0], f.partition[1])
        values.add(f.partition[1])
    assert values == {"al", "\u00e9m", "ga"}       # code points, not bytes
    from pyiceberg.expressions import EqualTo
    assert pyiceberg_rows(tbl, EqualTo("name", "\u00e9mile61")) == [key(make_row(61))]


def test_uuid_identity_partitions_with_upserts(tables):
    t = os.path.join(tables, "part_uuid")
    tbl = static_table(t)
    assert [str(f.transform) for f in tbl.spec().fields] == ["identity"]
    want = expected(16, gen=1)
    assert pyiceberg_rows(tbl) == want
    assert duckdb_rows(t) == want
    tasks = list(tbl.scan().plan_files())
    assert tasks
    for task in tasks:
        data = read_file(task.file.file_path)
        part = task.file.partition[0]
        part = part if isinstance(part, uuid.UUID) else uuid.UUID(bytes=bytes(part))
        assert {uuid.UUID(bytes=bytes(v)) for v in data["u"].to_pylist()} == {part}
        for d in task.delete_files:
            assert d.partition == task.file.partition
        assert f"/u={part}/" in task.file.file_path


def test_expire_snapshots_takes_durations(fresh_tables):
    from conftest import CDCFLOW

    t = os.path.join(fresh_tables, "types")
    help_text = subprocess.run([CDCFLOW, "expire-snapshots", "--help"], capture_output=True, text=True).stdout
    for word in ("--older-than", "--retain-last", "--dry-run", "7d", "history.expire.max-snapshot-age-ms"):
        assert word in help_text
    # Both snapshots are younger than 7 days: nothing goes.
    r = subprocess.run([CDCFLOW, "expire-snapshots", t, "--older-than", "7d"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(static_table(t).metadata.snapshots) == 2
    for bad in ("7x", "-7d", "soon"):
        r = subprocess.run([CDCFLOW, "expire-snapshots", t, "--older-than", bad], capture_output=True, text=True)
        assert r.returncode == 2 and "bad --older-than" in r.stderr
    r = subprocess.run([CDCFLOW, "expire-snapshots", t, "--older-than", "0s"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tbl = static_table(t)
    assert len(tbl.metadata.snapshots) == 1
    assert pyiceberg_rows(tbl) == expected(120)
    # scan --timestamp takes a duration too: one hour ago there was no snapshot yet.
    r = subprocess.run([CDCFLOW, "scan", t, "--timestamp", "1h"], capture_output=True, text=True)
    assert r.returncode != 0
    r = subprocess.run([CDCFLOW, "scan", t, "--timestamp", "0s", "--format", "jsonl"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 120


def test_bounded_history_reads_and_expires(fresh_tables):
    """history/: 20 commits with history.expire.max-snapshot-age-ms = 0 and min-snapshots-to-keep = 3
    set after the first; the sink kept three snapshots in the metadata."""
    import json
    import time
    from conftest import CDCFLOW

    t = os.path.join(fresh_tables, "history")
    tbl = static_table(t)
    assert tbl.properties["history.expire.max-snapshot-age-ms"] == "0"
    snaps = tbl.metadata.snapshots
    assert len(snaps) == 3 and len(tbl.metadata.snapshot_log) == 3
    assert pyiceberg_rows(tbl) == expected(120)
    assert duckdb_rows(t) == expected(120)
    # The oldest kept snapshot still reads (time travel within the kept history).
    oldest = tbl.scan(snapshot_id=snaps[0].snapshot_id).to_arrow()
    assert oldest.num_rows == 108
    # Manifest lists of the dropped snapshots are orphans now: expire-snapshots removes them
    # once they are old enough (an hour: younger ones may belong to a commit in flight).
    lists = glob.glob(os.path.join(t, "metadata", "snap-*.avro"))
    assert len(lists) == 20
    old = time.time() - 2 * 3600
    for dirpath, _, names in os.walk(t):
        for n in names:
            os.utime(os.path.join(dirpath, n), (old, old))
    r = subprocess.run([CDCFLOW, "expire-snapshots", t, "--older-than", "0s", "--retain-last", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(glob.glob(os.path.join(t, "metadata", "snap-*.avro"))) == 3
    tbl = static_table(t)
    assert pyiceberg_rows(tbl) == expected(120)
    assert len(glob.glob(os.path.join(t, "data", "*.parquet"))) == 20   # appends: every file is live
    hint = open(os.path.join(t, "metadata", "version-hint.text")).read().strip()
    md = json.load(open(os.path.join(t, "metadata", f"v{hint}.metadata.json")))
    assert len(md["snapshots"]) == 3


def test_optimize_keeps_types_bounds_and_uuid_partitions(fresh_tables):
    from conftest import CDCFLOW
    from pyiceberg.conversions import from_bytes

    t = os.path.join(fresh_tables, "types")
    r = subprocess.run([CDCFLOW, "optimize", t], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tbl = static_table(t)
    assert tbl.current_snapshot().summary.operation.value == "replace"
    assert pyiceberg_rows(tbl) == expected(120)
    assert duckdb_rows(t) == expected(120)
    files = data_files(tbl)
    assert len(files) == 1
    f, schema = files[0], tbl.schema()
    fid = {n: schema.find_field(n).field_id for n in ("u", "big", "f")}
    rows = [make_row(i) for i in range(120)]
    assert from_bytes(schema.find_type("u"), f.lower_bounds[fid["u"]]) == min(r["u"].bytes for r in rows)
    assert from_bytes(schema.find_type("big"), f.upper_bounds[fid["big"]]) == max(r["big"] for r in rows)
    assert f.nan_value_counts == {fid["f"]: 7}          # counted per row, not per distinct value

    # Upsert table partitioned by uuid: every data file rewritten without its deleted rows.
    t = os.path.join(fresh_tables, "part_uuid")
    r = subprocess.run([CDCFLOW, "optimize", t], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tbl = static_table(t)
    tasks = list(tbl.scan().plan_files())
    assert len(tasks) == 16 and all(not task.delete_files for task in tasks)
    assert pyiceberg_rows(tbl) == expected(16, gen=1)
    assert duckdb_rows(t) == expected(16, gen=1)
    for task in tasks:
        part = task.file.partition[0]
        part = part if isinstance(part, uuid.UUID) else uuid.UUID(bytes=bytes(part))
        assert [uuid.UUID(bytes=bytes(v)) for v in read_file(task.file.file_path)["u"].to_pylist()] == [part]
