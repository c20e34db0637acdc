"""test_parquet_interop.py - cdcflow's Parquet files read by pyarrow and DuckDB, and pyarrow's
files read by cdcflow, with identical values and types.

The C side is build/bench/bench_parquet: `write PATH ROWS KIND ...` writes a fixture and prints
the rows it wrote as JSON lines; `dump PATH` prints what cdcflow's reader reads; `leaf PATH
DOTTED` prints one nested leaf with its levels.  No stack needed.
"""

import datetime
import decimal
import json
import math
import os
import subprocess
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "build", "bench", "bench_parquet")

TYPES = {   # the `types` fixture: column -> (arrow type, parquet logical, converted type)
    "b": (pa.bool_(), "None", "NONE"),
    "i32": (pa.int32(), "None", "NONE"),
    "i64": (pa.int64(), "None", "NONE"),
    "f32": (pa.float32(), "None", "NONE"),
    "f64": (pa.float64(), "None", "NONE"),
    "s": (pa.string(), "String", "UTF8"),
    "bin": (pa.binary(), "None", "NONE"),
    "d": (pa.date32(), "Date", "DATE"),
    "ts": (pa.timestamp("us", tz="UTC"), "Timestamp", "TIMESTAMP_MICROS"),
    "tsntz": (pa.timestamp("us"), "Timestamp", "NONE"),
    "t": (pa.time64("us"), "Time", "NONE"),
    "dec9": (pa.decimal128(9, 2), "Decimal", "DECIMAL"),
    "dec18": (pa.decimal128(18, 4), "Decimal", "DECIMAL"),
    "dec38": (pa.decimal128(38, 10), "Decimal", "DECIMAL"),
    "u": (pa.binary(16), "UUID", "NONE"),
    "allnull": (pa.string(), "String", "UTF8"),
}


@pytest.fixture(scope="module", autouse=True)
def tool():
    if not os.path.exists(TOOL):
        subprocess.run(["make", "-s", "-C", ROOT, "build/bench/bench_parquet"], check=True)
    return TOOL


def run(*args):
    out = subprocess.run([TOOL, *map(str, args)], check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line]


# ------------------------------------------------------------ canonical values

def canon_expected(col, v):
    """A value as bench_parquet prints it -> comparable Python value."""
    if v is None:
        return None
    if col.startswith("dec"):
        return decimal.Decimal(v)
    if col in ("f32", "f64") or isinstance(v, float):
        return float(v)
    return v


def canon_arrow_column(arr):
    """An Arrow column -> list of comparable Python values (micros, days, hex, ...)."""
    t = arr.type
    if pa.types.is_timestamp(t):
        arr = pc.cast(arr, pa.timestamp("us", tz=t.tz), safe=False)
        return pc.cast(arr, pa.int64()).to_pylist()
    if pa.types.is_date32(t):
        return pc.cast(arr, pa.int32()).to_pylist()
    if pa.types.is_time(t):
        return pc.cast(pc.cast(arr, pa.time64("us")), pa.int64()).to_pylist()
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        return [None if x is None else str(uuid.UUID(bytes=x)) for x in arr.to_pylist()]
    if pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t):
        return [None if x is None else x.hex() for x in arr.to_pylist()]
    if pa.types.is_floating(t):
        return [None if x is None else float(x) for x in arr.to_pylist()]
    return arr.to_pylist()


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def assert_rows_match(expected_rows, columns):
    """expected_rows: list of dicts; columns: name -> list of canonical values."""
    for name, got in columns.items():
        want = [canon_expected(name, r[name]) for r in expected_rows]
        assert len(got) == len(want), name
        bad = [(i, w, g) for i, (w, g) in enumerate(zip(want, got)) if not same(w, g)]
        assert not bad, f"column {name}: first differences {bad[:3]}"


# ------------------------------------------------------------ cdcflow -> pyarrow, DuckDB

WRITE_CASES = [
    ("zstd", "dict", 0, 0),
    ("zstd", "plain", 0, 0),
    ("snappy", "dict", 16384, 1024),      # several row groups and pages
    ("none", "dict", 65536, 4096),
    ("none", "plain", 65536, 4096),
]


@pytest.mark.parametrize("codec,enc,rg_bytes,page_bytes", WRITE_CASES)
def test_pyarrow_reads_cdcflow(tmp_path, codec, enc, rg_bytes, page_bytes):
    path = tmp_path / "types.parquet"
    args = ["write", path, 3000, "types", codec, enc]
    if rg_bytes:
        args += [rg_bytes, page_bytes]
    expected = run(*args)
    assert len(expected) == 3000

    f = pq.ParquetFile(path)
    md = f.metadata
    assert md.created_by == "cdcflow version 0.1.0"
    assert md.num_rows == 3000
    if rg_bytes:
        assert md.num_row_groups > 1
    table = f.read()

    # types, nullability and field ids as meant
    for i, (name, (atype, logical, converted)) in enumerate(TYPES.items()):
        field = table.schema.field(name)
        assert field.type == atype or (name == "u" and field.type.byte_width == 16), (name, field.type)
        assert field.nullable == (name != "i64")
        assert field.metadata[b"PARQUET:field_id"] == str(100 + i).encode()
        col = f.schema.column(i)
        assert str(col.logical_type).startswith(logical), (name, col.logical_type)
        assert col.converted_type == converted, (name, col.converted_type)
    assert "isAdjustedToUTC=true" in str(f.schema.column(8).logical_type)
    assert "isAdjustedToUTC=false" in str(f.schema.column(9).logical_type)
    assert table.schema.metadata[b"cdcflow.fixture"] == b"types"

    # values
    assert_rows_match(expected, {n: canon_arrow_column(table.column(n)) for n in TYPES})

    # statistics of every row group agree with the values pyarrow read
    start = 0
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        part = table.slice(start, rg.num_rows)
        start += rg.num_rows
        for i, name in enumerate(TYPES):
            st = rg.column(i).statistics
            arr = part.column(name)
            assert st is not None and st.null_count == arr.null_count, name
            if arr.null_count == len(arr):
                assert not st.has_min_max, name
                continue
            assert st.has_min_max, name
            if name in ("u", "bin"):
                vals = [x for x in arr.to_pylist() if x is not None]
                assert st.min == min(vals) and st.max == max(vals), name
            elif name in ("dec9", "dec18"):
                # pyarrow cannot turn INT32/INT64 decimal stats into Decimals: compare unscaled
                mm = pc.min_max(arr).as_py()
                scale = arr.type.scale
                assert st.min_raw == int(mm["min"].scaleb(scale)), name
                assert st.max_raw == int(mm["max"].scaleb(scale)), name
            elif name == "b":
                mm = pc.min_max(arr).as_py()
                assert (st.min, st.max) == (mm["min"], mm["max"])
            else:
                mm = pc.min_max(arr).as_py()
                assert st.min == mm["min"] and st.max == mm["max"], (name, st.min, st.max, mm)


def test_duckdb_reads_cdcflow(tmp_path):
    import duckdb

    path = tmp_path / "types.parquet"
    expected = run("write", path, 2000, "types", "zstd", "dict", 32768, 2048)
    con = duckdb.connect()
    kinds = {r[0]: r[1] for r in con.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()}
    assert kinds == {
        "b": "BOOLEAN", "i32": "INTEGER", "i64": "BIGINT", "f32": "FLOAT", "f64": "DOUBLE",
        "s": "VARCHAR", "bin": "BLOB", "d": "DATE", "ts": "TIMESTAMP WITH TIME ZONE",
        "tsntz": "TIMESTAMP", "t": "TIME", "dec9": "DECIMAL(9,2)", "dec18": "DECIMAL(18,4)",
        "dec38": "DECIMAL(38,10)", "u": "UUID", "allnull": "VARCHAR",
    }
    rows = con.sql(
        "SELECT b, i32, i64, f32, f64, s, lower(hex(bin)), d - DATE '1970-01-01', epoch_us(ts), "
        "epoch_us(tsntz), epoch_us(t), CAST(dec9 AS VARCHAR), CAST(dec18 AS VARCHAR), "
        f"CAST(dec38 AS VARCHAR), CAST(u AS VARCHAR), allnull FROM read_parquet('{path}')").fetchall()
    cols = list(TYPES)
    got = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    for c in ("dec9", "dec18", "dec38"):
        got[c] = [None if x is None else decimal.Decimal(x) for x in got[c]]
    for c in ("f32", "f64"):
        got[c] = [None if x is None else float(x) for x in got[c]]
    assert_rows_match(expected, got)


def test_customers_file_pyarrow_and_duckdb(tmp_path):
    import duckdb

    path = tmp_path / "customers.parquet"
    # 30000 rows: mostly-distinct columns (email, ids, timestamps) leave their dictionary
    # after 16384 values, so chunks mix dictionary pages and PLAIN pages
    expected = run("write", path, 30000, "customers")
    encs = pq.ParquetFile(path).metadata.row_group(0).column(1).encodings
    assert "RLE_DICTIONARY" in encs and "PLAIN" in encs
    table = pq.read_table(path)
    assert table.num_rows == 30000
    assert table.schema.field("registration_date").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("total_orders").type == pa.int32()
    assert_rows_match(expected, {n: canon_arrow_column(table.column(n)) for n in table.column_names})
    con = duckdb.connect()
    n, total, ops = con.sql(
        f"SELECT count(*), sum(customer_id), count(DISTINCT _cdc_operation) FROM read_parquet('{path}')"
    ).fetchone()
    assert (n, total) == (30000, sum(r["customer_id"] for r in expected))
    emails = con.sql(f"SELECT email FROM read_parquet('{path}')").fetchall()
    assert [e for (e,) in emails] == [r["email"] for r in expected]
    assert ops == len({r["_cdc_operation"] for r in expected})


# ------------------------------------------------------------ nested: Delta checkpoint shape

@pytest.mark.parametrize("nrows,codec,page_bytes", [(40, "zstd", 0), (5000, "snappy", 512)])
def test_checkpoint_shape_read_by_pyarrow(tmp_path, nrows, codec, page_bytes):
    path = tmp_path / "checkpoint.parquet"
    args = ["write", path, nrows, "checkpoint", codec, "dict"]
    if page_bytes:   # many pages, cut only at record boundaries
        args += [0, page_bytes]
    rows = run(*args)
    table = pq.read_table(path)
    schema = table.schema
    assert schema.field("add").type.field("partitionValues").type == pa.map_(pa.string(), pa.string())
    assert pa.types.is_list(schema.field("metaData").type.field("partitionColumns").type)
    if page_bytes:
        md = pq.ParquetFile(path).metadata
        assert md.row_group(0).column(9).total_uncompressed_size > 4 * page_bytes   # add.stats
    got = table.to_pylist()
    assert len(got) == nrows
    for meta, row in zip(rows, got):
        r, kind = meta["row"], meta["kind"]
        present = {k for k, v in row.items() if v is not None}
        want = {0: "txn", 1: "add", 2: "remove", 3: "metaData", 4: "protocol"}[kind]
        assert present == {want}, (r, row)
        v = row[want]
        if kind == 0:
            assert v == {"appId": f"cdcflow-topic-{r % 4}", "version": r * 10,
                         "lastUpdated": 1700000000000 + r}
        elif kind == 1:
            assert v["path"] == f"part-{r:05d}.parquet"
            assert v["partitionValues"] == ([("region", "eu"), ("day", None)] if r % 2 else [])
            assert v["size"] == 1000 + r and v["modificationTime"] == 1700000000000 + r
            assert v["dataChange"] == (r % 4 == 1)
            assert json.loads(v["stats"]) == {"numRecords": r}
        elif kind == 2:
            assert v == {"path": f"old-{r:05d}.parquet", "deletionTimestamp": 1600000000000 + r,
                         "dataChange": False}
        elif kind == 3:
            assert v == {"id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
                         "partitionColumns": ["region", "day"],
                         "configuration": [("delta.enableChangeDataFeed", "true")]}
        else:
            assert v == {"minReaderVersion": 1, "minWriterVersion": 4}


def test_checkpoint_shape_read_by_duckdb(tmp_path):
    import duckdb

    path = tmp_path / "checkpoint.parquet"
    rows = run("write", path, 300, "checkpoint")
    con = duckdb.connect()
    adds = con.sql(f"SELECT add.path, add.size, map_keys(add.partitionValues) FROM read_parquet('{path}') "
                   "WHERE add IS NOT NULL ORDER BY add.size").fetchall()
    want = [(f"part-{m['row']:05d}.parquet", 1000 + m["row"], ["region", "day"] if m["row"] % 2 else [])
            for m in rows if m["kind"] == 1]
    assert adds == want
    txns = con.sql(f"SELECT txn.appId, txn.version FROM read_parquet('{path}') WHERE txn IS NOT NULL "
                   "ORDER BY txn.version").fetchall()
    assert txns == [(f"cdcflow-topic-{m['row'] % 4}", m["row"] * 10) for m in rows if m["kind"] == 0]
    cols = con.sql(f"SELECT metaData.partitionColumns, metaData.configuration['delta.enableChangeDataFeed'] "
                   f"FROM read_parquet('{path}') WHERE metaData IS NOT NULL").fetchall()
    assert cols in ([(["region", "day"], "true")], [(["region", "day"], ["true"])])


@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
def test_leaf_reader_on_pyarrow_checkpoint(tmp_path, page_version):
    """A nested file written by pyarrow: cdcflow reads add.path, add.size, txn.version and the
    partitionValues keys with the right levels."""
    path = tmp_path / "pa_checkpoint.parquet"
    add_t = pa.struct([("path", pa.string()), ("size", pa.int64()),
                       ("partitionValues", pa.map_(pa.string(), pa.string()))])
    txn_t = pa.struct([("appId", pa.string()), ("version", pa.int64())])
    rows = []
    for i in range(500):
        if i % 3 == 0:
            rows.append({"txn": {"appId": f"app-{i}", "version": i}, "add": None})
        else:
            pv = [("k", f"v{i}"), ("z", None)] if i % 2 else []
            rows.append({"txn": None, "add": {"path": f"f{i}.parquet", "size": i * 10,
                                              "partitionValues": pv}})
    table = pa.Table.from_pylist(rows, schema=pa.schema([("txn", txn_t), ("add", add_t)]))
    pq.write_table(table, path, row_group_size=200, data_page_size=512,
                   data_page_version=page_version)

    got = run("leaf", path, "add.path")
    assert len(got) == 500
    for i, e in enumerate(got):
        if i % 3 == 0:
            assert e == {"def": 0, "rep": 0, "v": None}
        else:
            assert e["v"] == f"f{i}.parquet" and e["def"] == 2
    sizes = run("leaf", path, "add.size")
    assert [e["v"] for e in sizes] == [None if i % 3 == 0 else i * 10 for i in range(500)]
    versions = run("leaf", path, "txn.version")
    assert [e["v"] for e in versions] == [i if i % 3 == 0 else None for i in range(500)]
    keys = run("leaf", path, "add.partitionValues.key_value.key")
    it = iter(keys)
    for i in range(500):
        e = next(it)
        if i % 3 == 0:
            assert (e["def"], e["rep"], e["v"]) == (0, 0, None)
        elif i % 2:
            assert (e["rep"], e["v"]) == (0, "k")
            e = next(it)
            assert (e["rep"], e["v"]) == (1, "z")
        else:
            assert (e["def"], e["rep"], e["v"]) == (2, 0, None)   # empty map
    assert next(it, None) is None


# ------------------------------------------------------------ pyarrow -> cdcflow

def pyarrow_table(n=2500):
    def nul(i, k):
        return (i * 7 + k) % 11 == 0

    cols = {
        "b": pa.array([None if nul(i, 0) else i % 3 == 0 for i in range(n)], pa.bool_()),
        "i32": pa.array([None if nul(i, 1) else (i % 97) * 1000 - 2**31 + (i == 5) for i in range(n)], pa.int32()),
        "i64": pa.array([None if nul(i, 2) else i * 9_000_000_000_019 - 2**62 for i in range(n)], pa.int64()),
        "f32": pa.array([None if nul(i, 3) else (i % 50) / 4 - 3 for i in range(n)], pa.float32()),
        "f64": pa.array([None if nul(i, 4) else i * 1.000001 - 1e6 for i in range(n)], pa.float64()),
        "s": pa.array([None if nul(i, 5) else ("grüße" if i % 5 == 0 else f"s{i % 40}") for i in range(n)], pa.string()),
        "bin": pa.array([None if nul(i, 6) else bytes([i % 256, 0, (i * 7) % 256])[: i % 4] for i in range(n)], pa.binary()),
        "d": pa.array([None if nul(i, 7) else datetime.date(1960, 1, 1) + datetime.timedelta(days=i * 13) for i in range(n)], pa.date32()),
        "ts": pa.array([None if nul(i, 8) else 1_600_000_000_000_000 + i * 123_456_789 for i in range(n)], pa.timestamp("us", tz="UTC")),
        "tsntz": pa.array([None if nul(i, 9) else -5_000_000_000 + i * 1_000_001 for i in range(n)], pa.timestamp("us")),
        "ts_ms": pa.array([None if nul(i, 10) else 1_600_000_000_000 + i * 1001 for i in range(n)], pa.timestamp("ms", tz="UTC")),
        "ts_ns": pa.array([None if nul(i, 11) else 1_600_000_000_000_000_000 + i * 1_000_001_000 for i in range(n)], pa.timestamp("ns")),
        "t": pa.array([None if nul(i, 12) else (i * 3_600_000_123) % 86_400_000_000 for i in range(n)], pa.time64("us")),
        "dec9": pa.array([None if nul(i, 13) else decimal.Decimal(i * 37 - 5000) / 100 for i in range(n)], pa.decimal128(9, 2)),
        "dec18": pa.array([None if nul(i, 14) else decimal.Decimal(i * 123456789 - 10**15) / 10**4 for i in range(n)], pa.decimal128(18, 4)),
        "dec38": pa.array([None if nul(i, 15) else decimal.Decimal(i * 10**25 + 7) / 10**10 * (-1) ** i for i in range(n)], pa.decimal128(38, 10)),
    }
    return pa.table(cols)


READ_CASES = [
    ("1.0", "zstd", True, "2.6"),
    ("2.0", "zstd", True, "2.6"),
    ("1.0", "snappy", False, "2.6"),
    ("2.0", "snappy", True, "2.6"),
    ("1.0", "gzip", True, "2.6"),
    ("2.0", "gzip", False, "2.6"),
    ("1.0", "none", True, "1.0"),      # format 1.0: PLAIN_DICTIONARY pages
    ("2.0", "none", False, "2.6"),
]


@pytest.mark.parametrize("page_version,codec,dictionary,fmt", READ_CASES)
def test_cdcflow_reads_pyarrow(tmp_path, page_version, codec, dictionary, fmt):
    table = pyarrow_table()
    if fmt == "1.0":   # format 1.0 has no NTZ / nanosecond timestamps, no TIME(us) in pyarrow
        table = table.drop_columns(["tsntz", "ts_ns", "t"])
    path = tmp_path / "pa.parquet"
    pq.write_table(table, path, data_page_version=page_version, compression=codec,
                   use_dictionary=dictionary, row_group_size=700, data_page_size=2048,
                   version=fmt)
    got = run("dump", path)
    assert len(got) == table.num_rows
    for name in table.column_names:
        want = canon_arrow_column(table.column(name))
        have = [canon_expected(name, r[name]) for r in got]
        bad = [(i, w, h) for i, (w, h) in enumerate(zip(want, have)) if not same(w, h)]
        assert not bad, f"{name}: first differences {bad[:3]}"


@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
def test_cdcflow_reads_pyarrow_delta_and_split_encodings(tmp_path, page_version):
    table = pyarrow_table(5000)
    encodings = {
        "i32": "DELTA_BINARY_PACKED", "i64": "DELTA_BINARY_PACKED", "d": "DELTA_BINARY_PACKED",
        "ts": "DELTA_BINARY_PACKED", "t": "DELTA_BINARY_PACKED", "dec18": "DELTA_BYTE_ARRAY",
        "s": "DELTA_LENGTH_BYTE_ARRAY", "bin": "DELTA_BYTE_ARRAY", "dec38": "DELTA_BYTE_ARRAY",
        "f32": "BYTE_STREAM_SPLIT", "f64": "BYTE_STREAM_SPLIT", "tsntz": "BYTE_STREAM_SPLIT",
    }
    path = tmp_path / "enc.parquet"
    pq.write_table(table, path, use_dictionary=False, column_encoding=encodings,
                   data_page_version=page_version, data_page_size=4096, row_group_size=3000)
    md = pq.ParquetFile(path).metadata
    names = table.column_names
    for name, enc in encodings.items():
        assert enc in md.row_group(0).column(names.index(name)).encodings, name
    got = run("dump", path)
    assert len(got) == table.num_rows
    for name in table.column_names:
        want = canon_arrow_column(table.column(name))
        have = [canon_expected(name, r[name]) for r in got]
        bad = [(i, w, h) for i, (w, h) in enumerate(zip(want, have)) if not same(w, h)]
        assert not bad, f"{name}: first differences {bad[:3]}"


def test_schema_and_field_ids_of_pyarrow_file(tmp_path):
    fields = [pa.field("id", pa.int64(), nullable=False, metadata={"PARQUET:field_id": "7"}),
              pa.field("name", pa.string(), metadata={"PARQUET:field_id": "9"})]
    table = pa.table({"id": [1, 2], "name": ["a", None]}, schema=pa.schema(fields))
    path = tmp_path / "ids.parquet"
    pq.write_table(table, path)
    info = run("info", path)[0]
    assert info["num_rows"] == 2
    assert info["fields"] == [
        {"name": "id", "type": "int64", "nullable": False, "field_id": 7},
        {"name": "name", "type": "string", "nullable": True, "field_id": 9},
    ]


def test_cdcflow_reads_delta_rs_files_and_checkpoint(tmp_path):
    """Files from another writer (delta-rs, arrow-rs underneath): data files and the
    checkpoint's add.path / add.size / protocol leaves."""
    import deltalake

    table = pa.table({"id": pa.array(range(3000), pa.int64()),
                      "s": pa.array([f"v{i % 17}" for i in range(3000)]),
                      "x": pa.array([i / 7 if i % 3 else None for i in range(3000)]),
                      "ts": pa.array([1_700_000_000_000_000 + i for i in range(3000)], pa.timestamp("us", tz="UTC"))})
    root = tmp_path / "dl"
    deltalake.write_deltalake(str(root), table)
    deltalake.write_deltalake(str(root), table.slice(0, 1000), mode="append")
    dt = deltalake.DeltaTable(str(root))
    dt.create_checkpoint()
    files = dt.files()
    assert len(files) == 2
    for f in files:
        path = root / f
        want = pq.read_table(path)
        got = run("dump", path)
        assert len(got) == want.num_rows
        for name in want.column_names:
            assert [canon_expected(name, r[name]) for r in got] == canon_arrow_column(want.column(name)), name
    cp = root / "_delta_log" / f"{dt.version():020d}.checkpoint.parquet"
    paths = [e["v"] for e in run("leaf", cp, "add.path") if e["v"] is not None]
    assert sorted(paths) == sorted(files)
    sizes = {e["v"] for e in run("leaf", cp, "add.size") if e["v"] is not None}
    assert sizes == {os.path.getsize(root / f) for f in files}
    readers = [e["v"] for e in run("leaf", cp, "protocol.minReaderVersion") if e["v"] is not None]
    assert readers == [dt.protocol().min_reader_version]
