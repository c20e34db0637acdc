"""test_deltalake_cdc.py - SYSTEM.md's "Delta Lake CDF Tests" against tables cdcflow writes:
version-to-version changes, time range queries, operation detection, partitioned tables,
incremental processing, schema evolution and a large dataset, read with delta-rs (deltalake)
and DuckDB.  Tables are written by the Delta sink through build/bench/bench_delta (see
test_delta_sink.py); the chain from PostgreSQL is covered by the end-to-end tests.
"""

import collections
import datetime
import json
import subprocess
import time

import pytest
from deltalake import DeltaTable

from test_delta_sink import (SCHEMA, apply, driver, make_events, model, read_delta, rows_by_id,
                             run_cdcflow, write_events)


def cdf(table, **kw):
    return DeltaTable(str(table)).load_cdf(**kw).read_all().to_pylist()


def three_commits(tmp_path):
    """v0: insert ids 1-4; v1: update 1, 2, delete 3; v2: insert 5, update 1 again, delete 4."""
    ev = [{"op": "c", "lsn": 10 + i, "row": {"id": i, "name": "v0_%d" % i, "country": "US"}, "offset": i - 1}
          for i in range(1, 5)]
    ev += [{"op": "u", "lsn": 20, "row": {"id": 1, "name": "v1_1", "country": "US"}, "offset": 4},
           {"op": "u", "lsn": 21, "row": {"id": 2, "name": "v1_2", "country": "DE"}, "offset": 5},
           {"op": "d", "lsn": 22, "row": {"id": 3, "name": "v0_3", "country": "US"}, "offset": 6},
           {"op": "c", "lsn": 30, "row": {"id": 5, "name": "v2_5", "country": "FR"}, "offset": 7},
           {"op": "u", "lsn": 31, "row": {"id": 1, "name": "v2_1", "country": "US"}, "offset": 8},
           {"op": "d", "lsn": 32, "row": {"id": 4, "name": "v0_4", "country": "US"}, "offset": 9}]
    table = tmp_path / "t"
    # one commit per stage: the driver commits every `batch` events
    for stage, upto in ((0, 4), (1, 7), (2, 10)):
        write_events(tmp_path / "ev.jsonl", ev[:upto])
        apply(table, tmp_path / "ev.jsonl", batch=100)
        time.sleep(0.05)   # distinct commit timestamps
    return table, ev


def changes(rows):
    return sorted((r["_commit_version"], r["_change_type"], r["id"], r["name"]) for r in rows)


def test_version_to_version_changes(tmp_path):
    table, _ = three_commits(tmp_path)
    assert DeltaTable(str(table)).version() == 2
    assert changes(cdf(table, starting_version=1, ending_version=1)) == [
        (1, "delete", 3, "v0_3"),
        (1, "update_postimage", 1, "v1_1"), (1, "update_postimage", 2, "v1_2"),
        (1, "update_preimage", 1, "v0_1"), (1, "update_preimage", 2, "v0_2"),
    ]
    assert changes(cdf(table, starting_version=0, ending_version=0)) == [
        (0, "insert", i, "v0_%d" % i) for i in range(1, 5)]
    all_changes = changes(cdf(table, starting_version=0))
    assert len(all_changes) == 4 + 5 + 4
    # our own reader of the feed agrees with delta-rs
    ours = [json.loads(l) for l in
            run_cdcflow("changes", table, "--from-version", 0, "--format", "jsonl").stdout.splitlines()]
    assert changes(ours) == all_changes


def test_time_range_queries(tmp_path):
    table, _ = three_commits(tmp_path)
    hist = {h["version"]: h["timestamp"] for h in DeltaTable(str(table)).history()}
    assert hist[0] < hist[1] < hist[2]
    start = datetime.datetime.fromtimestamp(hist[1] / 1000, datetime.timezone.utc)
    end = datetime.datetime.fromtimestamp(hist[2] / 1000, datetime.timezone.utc)
    got = cdf(table, starting_timestamp=start.isoformat(), ending_timestamp=end.isoformat())
    assert {r["_commit_version"] for r in got} == {1, 2}
    ours = [json.loads(l) for l in run_cdcflow("changes", table, "--from-timestamp", hist[1],
                                               "--to-timestamp", hist[1], "--format", "jsonl").stdout.splitlines()]
    assert {r["_commit_version"] for r in ours} == {1}
    # time travel by timestamp: the table as of version 1
    at1 = [json.loads(l) for l in run_cdcflow("scan", table, "--timestamp", hist[1], "--format", "jsonl")
           .stdout.splitlines()]
    assert sorted((r["id"], r["name"]) for r in at1) == [(1, "v1_1"), (2, "v1_2"), (4, "v0_4")]
    dt = DeltaTable(str(table))
    dt.load_as_version(1)
    assert sorted(dt.to_pyarrow_table().column("id").to_pylist()) == [1, 2, 4]


def test_operation_detection(tmp_path):
    ev = make_events(4000, 500, seed=21)
    write_events(tmp_path / "ev.jsonl", ev)
    table = tmp_path / "t"
    apply(table, tmp_path / "ev.jsonl", batch=4000)      # one commit: changes collapse per key
    got = collections.Counter(r["_change_type"] for r in cdf(table, starting_version=0))
    assert got["insert"] == len(model(ev)) and got["delete"] == 0
    # now commit after every event: every operation is visible as itself
    table2 = tmp_path / "t2"
    ev2 = make_events(600, 80, seed=22)
    write_events(tmp_path / "ev2.jsonl", ev2)
    apply(table2, tmp_path / "ev2.jsonl", batch=1)
    got = collections.Counter(r["_change_type"] for r in cdf(table2, starting_version=0))
    # an insert of a live key is an update; a delete of a dead key is nothing
    live, want = set(), collections.Counter()
    for e in ev2:
        k = e["row"]["id"]
        if e["op"] == "d":
            if k in live:
                want["delete"] += 1
                live.discard(k)
        elif k in live:
            want["update_preimage"] += 1
            want["update_postimage"] += 1
        else:
            want["insert"] += 1
            live.add(k)
    assert got == want
    ops = collections.Counter(read_delta(table2).column("_cdc_operation").to_pylist())
    assert set(ops) <= {"INSERT", "UPDATE"} and sum(ops.values()) == len(live)


def test_partitioned_tables(tmp_path):
    ev = make_events(3000, 400, seed=23)
    write_events(tmp_path / "ev.jsonl", ev)
    table = tmp_path / "t"
    apply(table, tmp_path / "ev.jsonl", batch=500, partition_by="country")
    dt = DeltaTable(str(table))
    assert dt.metadata().partition_columns == ["country"]
    assert all(f.split("/")[0].startswith("country=") for f in dt.files())
    de = dt.to_pyarrow_table(partitions=[("country", "=", "DE")])
    want = {k for k, r in model(ev).items() if r["country"] == "DE"}
    assert set(de.column("id").to_pylist()) == want
    # change data files are partitioned the same way
    cdc_rows = cdf(table, starting_version=1)
    assert cdc_rows and all(r["country"] in ("US", "DE", "FR", "JP", "BR") for r in cdc_rows)
    from conftest import duckdb_conn
    con = duckdb_conn()
    assert con.sql("select count(*) from delta_scan('%s') where country = 'DE'" % table).fetchone()[0] == len(want)


def test_incremental_processing(tmp_path):
    """A consumer that reads the feed from its last version, batch after batch, rebuilds the table."""
    ev = make_events(5000, 700, seed=24)
    table = tmp_path / "t"
    mirror, last = {}, -1
    for i in range(0, len(ev), 1000):
        write_events(tmp_path / "ev.jsonl", ev[:i + 1000])
        apply(table, tmp_path / "ev.jsonl", batch=250)
        v = DeltaTable(str(table)).version()
        for r in sorted(cdf(table, starting_version=last + 1, ending_version=v),
                        key=lambda r: (r["_commit_version"], r["_change_type"] != "update_preimage")):
            if r["_change_type"] in ("insert", "update_postimage"):
                mirror[r["id"]] = r["name"]
            elif r["_change_type"] == "delete":
                del mirror[r["id"]]
        last = v
    assert mirror == {k: r["name"] for k, r in model(ev).items()}


def test_schema_evolution(tmp_path):
    table = tmp_path / "t"
    ev1 = make_events(500, 100, seed=25)
    write_events(tmp_path / "ev1.jsonl", ev1)
    apply(table, tmp_path / "ev1.jsonl", batch=100)
    # a new column: old rows read it as null, new rows carry it
    ev2 = [dict(e, offset=500 + i) for i, e in enumerate(make_events(100, 100, seed=26, start_lsn=10 ** 6))]
    for e in ev2:
        e["row"]["tier"] = "gold"
    write_events(tmp_path / "ev2.jsonl", ev1 + ev2)
    apply(table, tmp_path / "ev2.jsonl", schema=SCHEMA + ",tier:string", batch=100)
    t = read_delta(table)
    assert "tier" in t.column_names
    tiers = dict(zip(t.column("id").to_pylist(), t.column("tier").to_pylist()))
    touched = {e["row"]["id"] for e in ev2}
    assert all(tiers[k] == "gold" for k in tiers if k in touched)
    assert any(v is None for v in tiers.values())
    # a type change is refused with a clear message, and the table is left as it was
    v = DeltaTable(str(table)).version()
    ev3 = [{"op": "c", "lsn": 10 ** 7, "row": {"id": 1, "name": "x", "amount": "1"}, "offset": 800}]
    write_events(tmp_path / "ev3.jsonl", ev1 + ev2 + ev3)
    bad = apply(table, tmp_path / "ev3.jsonl", schema=SCHEMA.replace("amount:double", "amount:string") + ",tier:string",
                batch=100, check=False)
    assert bad.returncode != 0 and "changed type from double to string" in bad.stderr
    # a dropped column too
    bad = apply(table, tmp_path / "ev3.jsonl", schema=SCHEMA, batch=100, check=False)
    assert bad.returncode != 0 and "'tier'" in bad.stderr and "dropping columns" in bad.stderr
    assert DeltaTable(str(table)).version() == v


def test_large_dataset(tmp_path):
    table = tmp_path / "t"
    out = subprocess.run([driver(), "gen", "--out", str(table), "--events", "1000000", "--batch", "100000"],
                         check=True, capture_output=True, text=True, timeout=600).stdout
    assert "1000000 events" in out
    dt = DeltaTable(str(table))
    assert dt.version() == 9
    t = dt.to_pyarrow_table(columns=["customer_id", "_source_lsn"])
    assert t.num_rows == 1000000
    assert len(set(t.column("_source_lsn").to_pylist())) == 1000000
    assert len(cdf(table, starting_version=9, ending_version=9)) == 100000
    from conftest import duckdb_conn
    con = duckdb_conn()
    assert con.sql("select count(*), min(customer_id), max(customer_id) from delta_scan('%s')" % table) \
        .fetchone() == (1000000, 1, 1000000)


def test_large_upsert_dataset(tmp_path):
    table = tmp_path / "t"
    subprocess.run([driver(), "gen", "--out", str(table), "--mode", "upsert", "--events", "300000",
                    "--batch", "50000"], check=True, capture_output=True, text=True, timeout=600)
    t = read_delta(table)
    ids = t.column("customer_id").to_pylist()
    assert len(ids) == len(set(ids))
    rows = DeltaTable(str(table)).load_cdf(starting_version=0).read_all()
    c = collections.Counter(rows.column("_change_type").to_pylist())
    assert c["insert"] - c["delete"] == len(ids)
    assert c["update_preimage"] == c["update_postimage"] > 0


def test_partition_values_of_every_kind(tmp_path):
    """Date, timestamp and string partitions with '/', spaces and nulls read back the same everywhere."""
    ev = [{"op": "c", "lsn": i, "row": {"id": i, "d": "2024-01-%02d" % (1 + i % 3),
                                        "ts": "2024-01-01T10:00:0%d.123456Z" % (i % 2), "amt": i * 1.5,
                                        "name": None if i % 10 == 0 else "n/%d x" % (i % 4)}}
          for i in range(100)]
    write_events(tmp_path / "ev.jsonl", ev)
    table = tmp_path / "t"
    apply(table, tmp_path / "ev.jsonl", schema="id:int64,d:date,ts:timestamp,amt:double,name:string",
          pk=None, mode="append", partition_by="d,ts,name")
    got = sorted((r["id"], str(r["d"]), r["ts"].strftime("%H:%M:%S.%f"), r["name"])
                 for r in read_delta(table).to_pylist())
    want = sorted((e["row"]["id"], e["row"]["d"], e["row"]["ts"][11:26], e["row"]["name"]) for e in ev)
    assert got == want
    from conftest import duckdb_conn
    con = duckdb_conn()
    assert con.sql("select count(*) from delta_scan('%s') where name is null" % table).fetchone()[0] == 10
    assert con.sql("select count(*) from delta_scan('%s') where name = 'n/1 x' and d = date '2024-01-02'"
                   % table).fetchone()[0] == sum(1 for e in ev if e["row"]["name"] == "n/1 x"
                                                 and e["row"]["d"] == "2024-01-02")
    assert con.sql("select min(ts)::varchar from delta_scan('%s')" % table).fetchone()[0] == \
        "2024-01-01 10:00:00.123456+00"
