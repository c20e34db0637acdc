"""test_delta_dv.py - a Delta table that Spark maintains with deletion vectors, fed by cdcflow.

cdcflow writes an upsert table; Spark turns on deletion vectors and runs DELETE, UPDATE and OPTIMIZE
on it (DELETE and UPDATE put vectors on cdcflow's files instead of rewriting them); cdcflow goes on
feeding it.  At each step what cdcflow's own readers (`scan`, `changes`) see, what Spark sees and
what DuckDB's delta extension sees must equal a key-by-key model of everything that happened to the
table, and the change feed must carry each change once.  cdcflow's checkpoints carry the vectors,
and its vacuum keeps the vector files in use.

The table is driven by build/bench/bench_delta (as in test_delta_sink.py) so no Kafka is needed;
Spark comes from the pinned set (deploy/spark/pom.xml), DuckDB from tests/requirements.txt.
"""

import glob
import json
import os

import pytest

from conftest import duckdb_conn
from test_delta_sink import apply, apply_with_kills, make_events, model, run_cdcflow, write_events
from test_spark_readers import _spark_or_skip, local_session

COLS = ("id", "name", "country", "amount", "_cdc_operation")


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    jars = _spark_or_skip()
    s = local_session("cdcflow-dv", jars, tmp_path_factory.mktemp("spark-dv"),
                      {"spark.databricks.delta.stats.collect": "true"})
    yield s
    s.stop()


def spark_rows(spark, table):
    df = spark.read.format("delta").load(str(table))
    return {r["id"]: tuple(r[c] for c in COLS) for r in df.select(*COLS).collect()}


def scan_rows(table):
    out = run_cdcflow("scan", table, "--format", "jsonl").stdout
    rows = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    got = {}
    for r in rows:
        assert r["id"] not in got, "duplicate key %r in cdcflow scan" % r["id"]
        got[r["id"]] = tuple(r[c] for c in COLS)
    return got


def duckdb_rows(table):
    con = duckdb_conn()
    try:
        q = "SELECT %s FROM delta_scan('%s')" % (", ".join(COLS), table)
        return {r[0]: tuple(r) for r in con.execute(q).fetchall()}
    finally:
        con.close()


def want_rows(state):
    return {k: tuple(v[c] for c in COLS) for k, v in state.items()}


def dv_files(table):
    return sorted(glob.glob(os.path.join(str(table), "**", "deletion_vector_*.bin"), recursive=True))


def log_actions(table, version):
    with open(os.path.join(str(table), "_delta_log", "%020d.json" % version)) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def latest_version(table):
    return max(int(os.path.basename(p)[:20]) for p in glob.glob(os.path.join(str(table), "_delta_log", "*.json")))


def assert_everyone_reads(spark, table, state):
    want = want_rows(state)
    assert scan_rows(table) == want
    assert spark_rows(spark, table) == want
    assert duckdb_rows(table) == want


def test_cdcflow_feeds_a_table_spark_maintains_with_deletion_vectors(spark, tmp_path):
    table = tmp_path / "t"
    ev1 = make_events(3000, 400, seed=21)
    write_events(tmp_path / "ev1.jsonl", ev1)
    apply(table, tmp_path / "ev1.jsonl", checkpoint_interval=4)
    state = model(ev1)
    assert_everyone_reads(spark, table, state)

    # Spark: vectors on, then a DELETE and an UPDATE that leave cdcflow's files in place
    spark.sql("ALTER TABLE delta.`%s` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')" % table)
    spark.sql("DELETE FROM delta.`%s` WHERE id %% 7 = 0" % table)
    v_delete = latest_version(table)
    spark.sql("UPDATE delta.`%s` SET name = concat(name, '-spark') WHERE id %% 5 = 1" % table)
    for k in [k for k in state if k % 7 == 0]:
        del state[k]
    for k, r in state.items():
        if k % 5 == 1:
            r["name"] += "-spark"
    acts = log_actions(table, v_delete)
    assert any((a.get("add") or {}).get("deletionVector") for a in acts), "Spark's DELETE wrote no vector"
    assert dv_files(table), "no deletion vector files"
    assert_everyone_reads(spark, table, state)

    # cdcflow's change feed of Spark's DELETE: one delete per row it removed, nothing else
    out = run_cdcflow("changes", table, "--from-version", v_delete, "--to-version", v_delete,
                      "--format", "jsonl").stdout
    ch = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    deleted = sorted(r["id"] for r in ch if r["_change_type"] == "delete")
    assert deleted == sorted(k for k in model(ev1) if k % 7 == 0)
    assert all(r["_change_type"] == "delete" for r in ch)

    # cdcflow feeds on: updates and deletes of keys Spark deleted, updated or left alone; a
    # checkpoint every 4 versions carries the vectors of the files it does not rewrite
    ev2 = make_events(3000, 400, seed=22, start_lsn=ev1[-1]["lsn"] + 1)
    # the driver resumes at the line after the offset the table holds: one growing input file
    write_events(tmp_path / "ev.jsonl", ev1 + ev2)
    before = latest_version(table)
    apply(table, tmp_path / "ev.jsonl", checkpoint_interval=4)
    state = apply_model(state, ev2)
    assert_everyone_reads(spark, table, state)
    # its removes name the vector of each file they retire
    removed_with_dv = 0
    for v in range(before + 1, latest_version(table) + 1):
        removed_with_dv += sum(1 for a in log_actions(table, v) if (a.get("remove") or {}).get("deletionVector"))
    assert removed_with_dv > 0

    # the change feed across cdcflow's commits: a key's last change wins and is seen once per version
    out = run_cdcflow("changes", table, "--from-version", before + 1, "--format", "jsonl").stdout
    seen = {}
    for r in (json.loads(ln) for ln in out.splitlines() if ln.strip()):
        key = (r["_commit_version"], r["id"], r["_change_type"])
        assert key not in seen, "change %r twice" % (key,)
        seen[key] = r

    # Spark compacts (folding the vectors into new files), cdcflow feeds once more
    spark.sql("DELETE FROM delta.`%s` WHERE id %% 11 = 3" % table)
    for k in [k for k in state if k % 11 == 3]:
        del state[k]
    spark.sql("OPTIMIZE delta.`%s`" % table)
    ev3 = make_events(1500, 400, seed=23, start_lsn=ev2[-1]["lsn"] + 1)
    write_events(tmp_path / "ev.jsonl", ev1 + ev2 + ev3)
    apply(table, tmp_path / "ev.jsonl", checkpoint_interval=4)
    state = apply_model(state, ev3)
    assert_everyone_reads(spark, table, state)

    # vacuum keeps what the current version needs, vector files included
    spark.sql("DELETE FROM delta.`%s` WHERE id %% 13 = 4" % table)
    for k in [k for k in state if k % 13 == 4]:
        del state[k]
    run_cdcflow("vacuum", table, "--retain-hours", "0", "--force")
    assert dv_files(table)
    assert_everyone_reads(spark, table, state)

    # cdcflow optimize folds the vectors into rewritten files; then vacuum drops the vector files
    run_cdcflow("optimize", table)
    live = [a["add"] for a in log_actions(table, latest_version(table)) if "add" in a]
    assert live and not any(a.get("deletionVector") for a in live)
    assert_everyone_reads(spark, table, state)
    run_cdcflow("vacuum", table, "--retain-hours", "0", "--force")
    assert not dv_files(table)
    assert_everyone_reads(spark, table, state)


def test_upsert_on_a_fresh_deletion_vector_table(spark, tmp_path):
    """A table Spark created with vectors on from the start (reader 3, writer 7), rows deleted by
    vector before cdcflow ever saw it: cdcflow's key index must not think those keys live."""
    table = tmp_path / "t"
    spark.sql("""CREATE TABLE delta.`%s` (id BIGINT, name STRING, country STRING, amount DOUBLE,
                 created TIMESTAMP, active BOOLEAN, _cdc_operation STRING, _source_lsn BIGINT)
                 USING delta TBLPROPERTIES ('delta.enableDeletionVectors' = 'true',
                                            'delta.enableChangeDataFeed' = 'true')""" % table)
    spark.sql("""INSERT INTO delta.`%s` SELECT id, concat('s', id), 'US', id * 1.5,
                 timestamp'2024-01-01 00:00:00', true, 'READ', 1 FROM range(1, 301)""" % table)
    spark.sql("DELETE FROM delta.`%s` WHERE id %% 3 = 0" % table)
    state = {i: {"id": i, "name": "s%d" % i, "country": "US", "amount": i * 1.5, "_cdc_operation": "READ"}
             for i in range(1, 301) if i % 3}
    assert dv_files(table)
    assert_everyone_reads(spark, table, state)

    ev = make_events(2000, 300, seed=31)
    write_events(tmp_path / "ev.jsonl", ev)
    apply(table, tmp_path / "ev.jsonl", checkpoint_interval=5)
    state = apply_model(state, ev)
    assert_everyone_reads(spark, table, state)
    # a key Spark deleted and cdcflow then updated is an insert in the feed, never an update
    cdf = spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 3) \
        .load(str(table)).select("id", "_change_type", "_commit_version").collect()
    first = {}
    for r in sorted(cdf, key=lambda r: r["_commit_version"]):
        first.setdefault(r["id"], r["_change_type"])
    for k, t in first.items():
        if k % 3 == 0:
            assert t in ("insert",), "key %d, deleted by Spark, came back as %s" % (k, t)


def apply_model(state, events):
    """model() continued from a state instead of an empty table."""
    out = {k: dict(v) for k, v in state.items()}
    for e in events:
        k = e["row"]["id"]
        if e["op"] == "d":
            out.pop(k, None)
        else:
            out[k] = dict(e["row"], _cdc_operation={"c": "INSERT", "u": "UPDATE", "r": "READ"}[e["op"]])
    return out


def replay_change_feed(spark, table):
    """The table rebuilt from Spark's reading of its change feed, version by version."""
    rows = spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 0) \
        .load(str(table)).select(*COLS, "_change_type", "_commit_version").collect()
    state = {}
    for r in sorted(rows, key=lambda r: (r["_commit_version"], r["_change_type"] != "delete")):
        if r["_change_type"] == "delete":
            state.pop(r["id"], None)
        elif r["_change_type"] in ("insert", "update_postimage"):
            state[r["id"]] = tuple(r[c] for c in COLS)
    return state


def test_cdcflow_writes_deletion_vectors(spark, tmp_path):
    """--delta-deletes dv: cdcflow's own upserts mark retired rows in deletion vectors; Spark and
    DuckDB read the table and Spark replays its change feed to the same rows, across kill -9."""
    table = tmp_path / "t"
    ev = make_events(20000, 1500, seed=41)
    write_events(tmp_path / "ev.jsonl", ev)
    kills = apply_with_kills(table, tmp_path / "ev.jsonl", "upsert", seed=3, attempts=9,
                             extra=("--checkpoint-interval", "5", "--delta-deletes", "dv"))
    assert kills >= 2, "the writer was killed %d times: the test proved little" % kills
    proto = [a["protocol"] for a in log_actions(table, 0) if "protocol" in a][0]
    assert "deletionVectors" in proto["readerFeatures"] and proto["minWriterVersion"] == 7
    vectors = sum(1 for v in range(1, latest_version(table) + 1) for a in log_actions(table, v)
                  if (a.get("add") or {}).get("deletionVector"))
    assert vectors > 0
    state = model(ev)
    assert_everyone_reads(spark, table, state)
    assert replay_change_feed(spark, table) == want_rows(state)

    # optimize folds the vectors in; the rows stay
    run_cdcflow("optimize", table)
    assert_everyone_reads(spark, table, state)
