"""test_iceberg_e2e.py - the real chain: PostgreSQL -> Debezium -> Kafka -> `cdcflow iceberg` -> Iceberg
table, compared row for row with PostgreSQL through pyiceberg and DuckDB.

Other tests write to public.customers too, so the comparison covers a block of customer ids only this
test uses; the pipeline consumes the whole topic.
"""

import os
import random
import subprocess

import pytest
from conftest import CDCFLOW, KAFKA_BOOTSTRAP, consume_until, duckdb_conn, topic_for

ID_BASE = 8_400_000
COLS = ["customer_id", "email", "full_name", "location", "customer_tier", "lifetime_value", "is_active"]


def run_pipeline(warehouse, tmp_path, mode="upsert", extra=()):
    cmd = [CDCFLOW, "iceberg", "--bootstrap", KAFKA_BOOTSTRAP, "--topic", topic_for("customers"),
           "--warehouse", str(warehouse), "--namespace", "analytics", "--table", "customers_analytics",
           "--mode", mode, "--available-now", "--metrics-port", "0",
           "--checkpoint-location", str(tmp_path / "ck"), "--group-id", "cdcflow-it-iceberg-e2e",
           "--log-level", "warn"] + list(extra)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return os.path.join(str(warehouse), "analytics", "customers_analytics")


def pg_rows(pg, lo, hi):
    with pg.cursor() as cur:
        cur.execute("""SELECT customer_id, email, concat_ws(' ', first_name, last_name),
                              concat_ws(', ', city, state, country), customer_tier,
                              lifetime_value::float8, is_active
                       FROM customers WHERE customer_id >= %s AND customer_id < %s""", (lo, hi))
        return {r[0]: tuple(r[1:]) for r in cur.fetchall()}


def latest_metadata(table):
    hint = open(os.path.join(table, "metadata", "version-hint.text")).read().strip()
    return os.path.join(table, "metadata", f"v{hint}.metadata.json")


def pyiceberg_rows(table, lo, hi):
    from pyiceberg.table import StaticTable
    t = StaticTable.from_metadata(latest_metadata(table)).scan(selected_fields=tuple(COLS)).to_arrow()
    out = {}
    for r in t.to_pylist():
        if lo <= r["customer_id"] < hi:
            assert r["customer_id"] not in out, "duplicate key %d" % r["customer_id"]
            out[r["customer_id"]] = tuple(r[c] for c in COLS[1:])
    return out


def duckdb_rows(table, lo, hi):
    con = duckdb_conn()
    try:
        rows = con.sql(f"SELECT {', '.join(COLS)} FROM iceberg_scan('{table}') "
                       f"WHERE customer_id >= {lo} AND customer_id < {hi}").fetchall()
    finally:
        con.close()
    assert len({r[0] for r in rows}) == len(rows), "duplicate keys in DuckDB's read"
    return {r[0]: tuple(r[1:]) for r in rows}



def wal_lsn(cur):
    """PostgreSQL's WAL position now, as the integer Debezium puts in source.lsn.  Events of this test
    come after it; the topic (shared, long-lived) may hold older events of the same ids."""
    cur.execute("SELECT pg_current_wal_lsn()::text")
    hi, lo = cur.fetchone()[0].split("/")
    return (int(hi, 16) << 32) | int(lo, 16)

def wait_for_marker(pg, marker_id):
    """Commit a marker update and wait until Debezium published it: everything before is in Kafka."""
    with pg.cursor() as cur:
        cur.execute("UPDATE customers SET customer_tier = %s WHERE customer_id = %s",
                    ("m%d" % random.randint(0, 10 ** 9), marker_id))
        cur.execute("SELECT customer_tier FROM customers WHERE customer_id = %s", (marker_id,))
        tier = cur.fetchone()[0]
    got = consume_until(topic_for("customers"),
                        lambda evs: any(e and (e.get("after") or {}).get("customer_tier") == tier for e in evs),
                        timeout=120)
    assert any(e and (e.get("after") or {}).get("customer_tier") == tier for e in got), "marker not seen in Kafka"


def test_iceberg_upsert_equals_postgres(pg, connector, tmp_path):
    if not os.access(CDCFLOW, os.X_OK):
        pytest.fail("build/cdcflow is not built")
    lo = ID_BASE + random.randrange(0, 500) * 1000
    hi = lo + 1000
    with pg.cursor() as cur:
        cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (lo, hi))
        for i in range(200):
            cur.execute("""INSERT INTO customers (customer_id, email, first_name, last_name, city, state, country,
                              registration_date, last_updated, is_active, customer_tier, lifetime_value)
                           VALUES (%s, %s, %s, %s, 'Oslo', NULL, 'NO', now(), now(), %s, 'bronze', %s)""",
                        (lo + i, "ice%d@example.com" % i, "First%d" % i, None if i % 6 == 0 else "Last%d" % i,
                         i % 3 == 0, round(i * 2.5, 2)))
        for i in range(0, 200, 4):
            cur.execute("UPDATE customers SET customer_tier = 'gold', lifetime_value = lifetime_value + 1 "
                        "WHERE customer_id = %s", (lo + i,))
        for i in range(1, 200, 9):
            cur.execute("DELETE FROM customers WHERE customer_id = %s", (lo + i,))
    wait_for_marker(pg, lo)
    wh = tmp_path / "warehouse"
    table = run_pipeline(wh, tmp_path)
    want = pg_rows(pg, lo, hi)
    assert len(want) == 200 - len(range(1, 200, 9))
    assert pyiceberg_rows(table, lo, hi) == want
    assert duckdb_rows(table, lo, hi) == want

    # more changes: the pipeline resumes from the offsets in the current snapshot
    with pg.cursor() as cur:
        for i in range(2, 200, 5):
            cur.execute("UPDATE customers SET email = %s WHERE customer_id = %s", ("new%d@example.com" % i, lo + i))
        for i in range(3, 200, 15):
            cur.execute("DELETE FROM customers WHERE customer_id = %s", (lo + i,))
    wait_for_marker(pg, lo)
    table = run_pipeline(wh, tmp_path)
    want = pg_rows(pg, lo, hi)
    assert pyiceberg_rows(table, lo, hi) == want
    assert duckdb_rows(table, lo, hi) == want
    # a run right after adds no snapshot, or one if another test wrote to the topic meanwhile
    from pyiceberg.table import StaticTable
    n = len(StaticTable.from_metadata(latest_metadata(table)).metadata.snapshots)
    run_pipeline(wh, tmp_path)
    assert len(StaticTable.from_metadata(latest_metadata(table)).metadata.snapshots) in (n, n + 1)


def test_iceberg_append_has_every_event_once(pg, connector, tmp_path):
    if not os.access(CDCFLOW, os.X_OK):
        pytest.fail("build/cdcflow is not built")
    lo = ID_BASE + 600_000 + random.randrange(0, 200) * 1000
    with pg.cursor() as cur:
        cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (lo, lo + 1000))
        since = wal_lsn(cur)
        for i in range(40):
            cur.execute("INSERT INTO customers (customer_id, email, first_name, last_name, customer_tier) "
                        "VALUES (%s, 'a@b', 'A', 'B', 'bronze')", (lo + i,))
        for i in range(40):
            cur.execute("UPDATE customers SET customer_tier = 'silver' WHERE customer_id = %s", (lo + i,))
    wait_for_marker(pg, lo)
    wh = tmp_path / "warehouse"
    table = run_pipeline(wh, tmp_path, mode="append")
    run_pipeline(wh, tmp_path, mode="append")       # nothing new: no duplicates
    from pyiceberg.table import StaticTable
    t = StaticTable.from_metadata(latest_metadata(table)).scan(
        selected_fields=("customer_id", "_cdc_operation", "customer_tier", "_source_lsn")).to_arrow()
    ops = sorted((r["customer_id"] - lo, r["_cdc_operation"], r["customer_tier"]) for r in t.to_pylist()
                 if lo <= r["customer_id"] < lo + 1000 and r["_source_lsn"] >= since
                 and not (r["customer_tier"] or "").startswith("m"))
    assert ops == sorted([(i, "INSERT", "bronze") for i in range(40)] + [(i, "UPDATE", "silver") for i in range(40)])
