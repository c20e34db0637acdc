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
import random
import subprocess

import pytest

from conftest import CDCFLOW, KAFKA_BOOTSTRAP, ROOT, duckdb_conn, topic_for
from test_delta_e2e import pg_rows, wait_for_marker
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


# ------------------------------------------------------------------ the real chain, Spark 4.1 maintaining

NEWEST_PY = os.path.join(ROOT, ".venv-newest", "bin", "python")
SPARK4_SQL = os.path.join(ROOT, "tests", "common", "spark4_sql.py")
DV_ID_BASE = 7_900_000     # a block of customer ids no other test uses


def spark4(scratch, *stmts):
    """Rows of the last statement, run by Spark 4.1 with Delta 4.4 in a process of its own."""
    if not os.path.exists(NEWEST_PY) or not glob.glob(os.path.join(ROOT, ".cache", "spark4", "jars", "*.jar")):
        pytest.skip("the newest Spark set is not installed (scripts/setup.sh readers)")
    r = subprocess.run([NEWEST_PY, SPARK4_SQL, str(scratch)] + list(stmts), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]


def feed(table, tmp_path):
    r = subprocess.run([CDCFLOW, "delta", "--bootstrap", KAFKA_BOOTSTRAP, "--topic", topic_for("customers"),
                        "--table-path", str(table), "--mode", "upsert", "--available-now", "--metrics-port", "0",
                        "--checkpoint-location", str(tmp_path / "ck"), "--group-id", "cdcflow-it-delta-dv",
                        "--log-level", "warn"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def block_duckdb(table, lo, hi):
    con = duckdb_conn()
    try:
        rows = con.execute("""SELECT customer_id, email, full_name, location, customer_tier,
                                     CAST(lifetime_value AS DOUBLE), is_active
                              FROM delta_scan('%s') WHERE customer_id >= %d AND customer_id < %d""" %
                           (table, lo, hi)).fetchall()
    finally:
        con.close()
    out = {r[0]: tuple(r[1:]) for r in rows}
    assert len(out) == len(rows), "a key twice"
    return out


def test_spark4_maintained_table_fed_from_postgres(pg, connector, tmp_path):
    """PostgreSQL -> Debezium -> Kafka -> cdcflow into a Delta table that Spark 4.1 maintains with
    deletion vectors on (DELETE, OPTIMIZE, DELETE between cdcflow's runs): it ends equal to PostgreSQL
    in DuckDB and in Spark 4.1, and cdcflow's own later commits carry vectors."""
    lo = DV_ID_BASE + random.Random().randrange(0, 90) * 1000
    hi = lo + 1000
    with pg.cursor() as cur:
        cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (lo, hi))
        for i in range(300):
            cur.execute("""INSERT INTO customers (customer_id, email, first_name, last_name, city, state, country,
                              registration_date, last_updated, is_active, customer_tier, lifetime_value)
                           VALUES (%s, %s, %s, %s, 'Graz', NULL, 'AT', now(), now(), %s, 'bronze', %s)""",
                        (lo + i, "dv%d@example.com" % i, "First%d" % i, "Last%d" % i, i % 2 == 0, round(i * 1.5, 2)))
    wait_for_marker(pg, lo)
    table = tmp_path / "customers"
    feed(table, tmp_path)
    assert block_duckdb(table, lo, hi) == pg_rows(pg, lo, hi)

    # PostgreSQL deletes two sets of rows; Spark, maintaining the table, deletes the same rows with
    # deletion vectors before cdcflow sees those events, and compacts in between
    gone1 = [lo + i for i in range(5, 300, 9)]
    gone2 = [lo + i for i in range(7, 300, 11) if lo + i not in gone1]
    with pg.cursor() as cur:
        cur.execute("DELETE FROM customers WHERE customer_id = ANY(%s)", (gone1 + gone2,))
    t = "delta.`%s`" % table
    spark4(tmp_path / "spark",
           "ALTER TABLE %s SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')" % t,
           "DELETE FROM %s WHERE customer_id IN (%s)" % (t, ",".join(map(str, gone1))),
           "OPTIMIZE %s" % t,
           "DELETE FROM %s WHERE customer_id IN (%s)" % (t, ",".join(map(str, gone2))))
    assert dv_files(table), "Spark's DELETE wrote no deletion vector"
    v_spark = latest_version(table)

    # more changes: updates of rows in files that carry vectors, inserts, deletes
    with pg.cursor() as cur:
        for i in range(0, 300, 4):
            cur.execute("UPDATE customers SET customer_tier = 'gold', lifetime_value = lifetime_value + 1 "
                        "WHERE customer_id = %s", (lo + i,))
        for i in range(300, 340):
            cur.execute("""INSERT INTO customers (customer_id, email, first_name, last_name, city, state, country,
                              registration_date, last_updated, is_active, customer_tier, lifetime_value)
                           VALUES (%s, %s, 'New', 'Row', 'Graz', NULL, 'AT', now(), now(), true, 'silver', 1.5)""",
                        (lo + i, "dvnew%d@example.com" % i))
        cur.execute("DELETE FROM customers WHERE customer_id = ANY(%s)", ([lo + i for i in range(2, 300, 13)],))
    wait_for_marker(pg, lo)
    feed(table, tmp_path)
    want = pg_rows(pg, lo, hi)
    assert block_duckdb(table, lo, hi) == want
    got = spark4(tmp_path / "spark", """SELECT customer_id, email, full_name, location, customer_tier,
                                               CAST(lifetime_value AS DOUBLE) AS lv, is_active FROM %s
                                        WHERE customer_id >= %d AND customer_id < %d""" % (t, lo, hi))
    assert {r["customer_id"]: (r["email"], r["full_name"], r["location"], r["customer_tier"], r["lv"],
                               r["is_active"]) for r in got} == want
    assert len(got) == len(want)
    # the table has vectors on: cdcflow's commits after Spark's marked rows instead of rewriting
    ours = [a for v in range(v_spark + 1, latest_version(table) + 1) for a in log_actions(table, v)
            if (a.get("add") or {}).get("deletionVector")]
    assert ours, "cdcflow wrote no deletion vector on a table that has them on"
