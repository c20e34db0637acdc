"""test_delta_e2e.py - the real chain: PostgreSQL -> Debezium -> Kafka -> `cdcflow delta --mode upsert`
-> Delta table, compared row for row with PostgreSQL (read with deltalake), and its change feed.

Other tests write to public.customers too, so the comparison covers the rows this test owns: a
block of customer ids no other test uses.  The pipeline itself consumes the whole topic.
"""

import json
import os
import random
import subprocess

import pytest
from conftest import CDCFLOW, KAFKA_BOOTSTRAP, consume_until, topic_for

ID_BASE = 7_300_000


def run_pipeline(table, tmp_path, mode="upsert", extra=()):
    cmd = [CDCFLOW, "delta", "--bootstrap", KAFKA_BOOTSTRAP, "--topic", topic_for("customers"),
           "--table-path", str(table), "--mode", mode, "--available-now", "--metrics-port", "0",
           "--checkpoint-location", str(tmp_path / "ck"), "--group-id", "cdcflow-it-delta-e2e",
           "--log-level", "warn"] + list(extra)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def pg_rows(pg, lo, hi):
    with pg.cursor() as cur:
        cur.execute("""SELECT customer_id, email, concat_ws(' ', first_name, last_name),
                              concat_ws(', ', city, state, country), customer_tier,
                              lifetime_value::float8, is_active
                       FROM customers WHERE customer_id >= %s AND customer_id < %s""", (lo, hi))
        return {r[0]: r[1:] for r in cur.fetchall()}


def delta_rows(table, lo, hi):
    from deltalake import DeltaTable
    t = DeltaTable(str(table)).to_pyarrow_table(
        columns=["customer_id", "email", "full_name", "location", "customer_tier", "lifetime_value",
                 "is_active", "_cdc_operation"])
    out = {}
    for r in t.to_pylist():
        if lo <= r["customer_id"] < hi:
            assert r["customer_id"] not in out, "duplicate key %d" % r["customer_id"]
            out[r["customer_id"]] = (r["email"], r["full_name"], r["location"], r["customer_tier"],
                                     r["lifetime_value"], r["is_active"])
    return out



def wal_lsn(cur):
    """PostgreSQL's WAL position now, as the integer Debezium puts in source.lsn.  Events of this test
    come after it; the topic (shared, long-lived) may hold older events of the same ids."""
    cur.execute("SELECT pg_current_wal_lsn()::text")
    hi, lo = cur.fetchone()[0].split("/")
    return (int(hi, 16) << 32) | int(lo, 16)

def wait_for_marker(pg, marker_id):
    """Commit a marker update and wait until Debezium published it: then everything before is in Kafka."""
    with pg.cursor() as cur:
        cur.execute("UPDATE customers SET customer_tier = %s WHERE customer_id = %s",
                    ("m%d" % random.randint(0, 10 ** 9), marker_id))
        cur.execute("SELECT customer_tier FROM customers WHERE customer_id = %s", (marker_id,))
        tier = cur.fetchone()[0]
    got = consume_until(topic_for("customers"),
                        lambda evs: any(e and (e.get("after") or {}).get("customer_tier") == tier for e in evs),
                        timeout=120)
    assert any(e and (e.get("after") or {}).get("customer_tier") == tier for e in got), "marker not seen in Kafka"


def test_upsert_table_equals_postgres(pg, connector, tmp_path):
    if not os.access(CDCFLOW, os.X_OK):
        pytest.fail("build/cdcflow is not built")
    rnd = random.Random()
    lo = ID_BASE + rnd.randrange(0, 600) * 1000
    hi = lo + 1000
    with pg.cursor() as cur:
        cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (lo, hi))
        for i in range(300):
            cur.execute("""INSERT INTO customers (customer_id, email, first_name, last_name, city, state, country,
                              registration_date, last_updated, is_active, customer_tier, lifetime_value)
                           VALUES (%s, %s, %s, %s, 'Lyon', NULL, 'FR', now(), now(), %s, 'bronze', %s)""",
                        (lo + i, "e2e%d@example.com" % i, "First%d" % i, None if i % 7 == 0 else "Last%d" % i,
                         i % 2 == 0, round(i * 1.25, 2)))
        for i in range(0, 300, 3):
            cur.execute("UPDATE customers SET customer_tier = 'gold', lifetime_value = lifetime_value + 10 "
                        "WHERE customer_id = %s", (lo + i,))
        for i in range(1, 300, 10):
            cur.execute("DELETE FROM customers WHERE customer_id = %s", (lo + i,))
    wait_for_marker(pg, lo)
    table = tmp_path / "customers"
    run_pipeline(table, tmp_path)
    want = pg_rows(pg, lo, hi)
    assert len(want) == 270
    assert delta_rows(table, lo, hi) == want

    # more changes, the pipeline resumes from the offsets in the table
    from deltalake import DeltaTable
    v_before = DeltaTable(str(table)).version()
    with pg.cursor() as cur:
        for i in range(2, 300, 5):
            cur.execute("UPDATE customers SET email = %s WHERE customer_id = %s", ("new%d@example.com" % i, lo + i))
        for i in range(4, 300, 20):
            cur.execute("DELETE FROM customers WHERE customer_id = %s", (lo + i,))
    wait_for_marker(pg, lo)
    run_pipeline(table, tmp_path)
    assert delta_rows(table, lo, hi) == pg_rows(pg, lo, hi)

    # the change feed of the second run shows those updates and deletes for our ids
    dt = DeltaTable(str(table))
    feed = [r for r in dt.load_cdf(starting_version=v_before + 1).read_all().to_pylist()
            if lo <= r["customer_id"] < hi]
    deleted = {r["customer_id"] for r in feed if r["_change_type"] == "delete"}
    assert deleted == {lo + i for i in range(4, 300, 20)} - {lo + i for i in range(1, 300, 10)}
    post = {r["customer_id"]: r["email"] for r in feed if r["_change_type"] == "update_postimage"}
    assert post[lo + 2] == "new2@example.com"
    pre = {r["customer_id"]: r["email"] for r in feed if r["_change_type"] == "update_preimage"}
    assert pre[lo + 2] == "e2e2@example.com"
    # the same feed through cdcflow
    ours = [json.loads(l) for l in subprocess.run(
        [CDCFLOW, "changes", str(table), "--from-version", str(v_before + 1), "--format", "jsonl"],
        capture_output=True, text=True, check=True).stdout.splitlines()]
    assert sorted((r["_change_type"], r["customer_id"]) for r in ours if lo <= r["customer_id"] < hi) == \
        sorted((r["_change_type"], r["customer_id"]) for r in feed)


def test_append_table_has_every_event_once(pg, connector, tmp_path):
    if not os.access(CDCFLOW, os.X_OK):
        pytest.fail("build/cdcflow is not built")
    lo = ID_BASE + 700_000 + random.randrange(0, 200) * 1000
    with pg.cursor() as cur:
        cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (lo, lo + 1000))
        since = wal_lsn(cur)
        for i in range(50):
            cur.execute("INSERT INTO customers (customer_id, email, first_name, last_name, customer_tier) "
                        "VALUES (%s, 'a@b', 'A', 'B', 'bronze')", (lo + i,))
        for i in range(50):
            cur.execute("UPDATE customers SET customer_tier = 'silver' WHERE customer_id = %s", (lo + i,))
    wait_for_marker(pg, lo)
    table = tmp_path / "append"
    run_pipeline(table, tmp_path, mode="append")
    run_pipeline(table, tmp_path, mode="append")   # nothing new: no duplicates
    from deltalake import DeltaTable
    rows = [r for r in DeltaTable(str(table)).to_pyarrow_table(
        columns=["customer_id", "_cdc_operation", "_source_lsn", "customer_tier"]).to_pylist()
        if lo <= r["customer_id"] < lo + 1000 and r["_source_lsn"] >= since]
    ops = sorted((r["customer_id"] - lo, r["_cdc_operation"], r["customer_tier"]) for r in rows
                 if not (r["customer_tier"] or "").startswith("m"))
    want = sorted([(i, "INSERT", "bronze") for i in range(50)] + [(i, "UPDATE", "silver") for i in range(50)])
    assert ops == want
