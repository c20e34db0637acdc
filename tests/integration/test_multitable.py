"""test_multitable.py - one `cdcflow run deploy/pipelines/all-tables.conf` process serves the four
Debezium topics (customers, orders, products, inventory) into four Delta tables and four Iceberg
tables, one table per topic through the {table} template, and each table equals PostgreSQL.

The example config is used as shipped, with only its paths, consumer groups and metrics ports
changed for the test.  Other tests write to these PostgreSQL tables too, so each comparison covers
a block of ids this test owns; the pipelines consume the whole topics.  A second run after more
changes shows every table resuming from its own offsets; a third, long-running one (stopped with
SIGTERM) keeps all eight tables equal while changes flow and serves per-table metrics.
"""

import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from conftest import CDCFLOW, ROOT, consume_until, topic_for

ID_BASE = 9_200_000
CONF = os.path.join(ROOT, "deploy", "pipelines", "all-tables.conf")
TABLES = ("customers", "orders", "products", "inventory")

# key column and compared columns of each table, as PostgreSQL SQL and as output column names
SHAPE = {
    "customers": ("customer_id", ["email", "customer_tier"]),
    "orders": ("order_id", ["customer_id", "status", "item_count", "total_amount"]),
    "products": ("product_id", ["sku", "name", "unit_price"]),
    "inventory": ("inventory_id", ["product_id", "warehouse", "quantity_on_hand"]),
}


def norm(v):
    # NUMERIC arrives as Decimal from both sides; compare as text so scale differences do not matter
    if v is None:
        return None
    if hasattr(v, "as_tuple"):
        return float(v)
    return v


def pg_rows(pg, table, lo, hi):
    key, cols = SHAPE[table]
    with pg.cursor() as cur:
        cur.execute(f"SELECT {key}, {', '.join(cols)} FROM {table} WHERE {key} >= %s AND {key} < %s", (lo, hi))
        return {r[0]: tuple(norm(v) for v in r[1:]) for r in cur.fetchall()}


def rows_of(pylist, table, lo, hi):
    key, cols = SHAPE[table]
    out = {}
    for r in pylist:
        k = r[key]
        if lo <= k < hi:
            assert k not in out, f"{table}: key {k} twice"
            out[k] = tuple(norm(r[c]) for c in cols)
    return out


def delta_rows(root, table, lo, hi):
    from deltalake import DeltaTable
    key, cols = SHAPE[table]
    t = DeltaTable(os.path.join(root, table)).to_pyarrow_table(columns=[key] + cols)
    return rows_of(t.to_pylist(), table, lo, hi)


def iceberg_metadata(root, table):
    d = os.path.join(root, "analytics", table, "metadata")
    hint = open(os.path.join(d, "version-hint.text")).read().strip()
    return os.path.join(d, f"v{hint}.metadata.json")


def iceberg_rows(root, table, lo, hi):
    from pyiceberg.table import StaticTable
    key, cols = SHAPE[table]
    t = StaticTable.from_metadata(iceberg_metadata(root, table)).scan(selected_fields=tuple([key] + cols))
    return rows_of(t.to_arrow().to_pylist(), table, lo, hi)


def make_conf(tmp_path, tag, delta_port=None):
    """The shipped example with test paths, groups and ports; everything else as written.  With
    delta_port the pipelines keep running (stopped by SIGTERM) and the Delta one serves metrics."""
    text = open(CONF).read()
    text = text.replace("/data/delta", str(tmp_path / "delta")).replace("/data/iceberg", str(tmp_path / "iceberg"))
    text = re.sub(r"--group-id (\S+)", lambda m: f"--group-id {m.group(1)}-it-{tag}", text)
    if delta_port is None:
        text = re.sub(r"--metrics-port \d+", "--metrics-port 0 --available-now --log-level warn", text)
    else:
        text = text.replace("--metrics-port 9464", f"--metrics-port {delta_port} --log-level warn")
        text = text.replace("--metrics-port 9465", "--metrics-port 0")
    path = tmp_path / ("all-tables.conf" if delta_port is None else "all-tables-live.conf")
    path.write_text(text)
    return str(path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_all(conf):
    r = subprocess.run([CDCFLOW, "run", conf], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def make_changes(pg, lo, phase):
    """Inserts, updates and deletes in every table, inside [lo, lo + 1000)."""
    with pg.cursor() as cur:
        if phase == 0:
            for t in ("orders", "inventory", "products", "customers"):
                cur.execute(f"DELETE FROM {t} WHERE {SHAPE[t][0]} >= %s AND {SHAPE[t][0]} < %s", (lo, lo + 1000))
            for i in range(20):
                cur.execute("INSERT INTO customers (customer_id, email, first_name, last_name, customer_tier) "
                            "VALUES (%s, %s, 'Mt', %s, 'bronze')", (lo + i, f"mt{lo + i}@example.com", f"L{i}"))
            for i in range(10):
                cur.execute("INSERT INTO products (product_id, sku, name, category, unit_price) "
                            "VALUES (%s, %s, %s, 'tools', %s)", (lo + i, f"MT-{lo + i}", f"Thing {i}", 1.5 + i))
                cur.execute("INSERT INTO inventory (inventory_id, product_id, warehouse, quantity_on_hand) "
                            "VALUES (%s, %s, %s, %s)", (lo + i, lo + i, f"wh{i % 3}", 10 * i))
            for i in range(30):
                cur.execute("INSERT INTO orders (order_id, customer_id, total_amount, item_count, status) "
                            "VALUES (%s, %s, %s, %s, 'pending')", (lo + i, lo + i % 20, 10 + i * 0.25, 1 + i % 4))
            for i in range(0, 30, 3):
                cur.execute("UPDATE orders SET status = 'shipped' WHERE order_id = %s", (lo + i,))
            for i in range(0, 20, 4):
                cur.execute("UPDATE customers SET customer_tier = 'gold' WHERE customer_id = %s", (lo + i,))
            cur.execute("DELETE FROM orders WHERE order_id = %s", (lo + 29,))
            cur.execute("DELETE FROM inventory WHERE inventory_id = %s", (lo + 9,))
        elif phase == 2:
            for i in range(2, 27, 6):
                cur.execute("UPDATE orders SET status = 'returned' WHERE order_id = %s", (lo + i,))
            cur.execute("UPDATE inventory SET warehouse = 'wh9' WHERE inventory_id = %s", (lo + 4,))
            cur.execute("DELETE FROM products WHERE product_id = %s", (lo + 8,))   # cascades to its inventory
        else:
            for i in range(1, 30, 5):
                cur.execute("UPDATE orders SET status = 'delivered', item_count = item_count + 1 "
                            "WHERE order_id = %s", (lo + i,))
            cur.execute("DELETE FROM orders WHERE order_id = %s", (lo + 28,))
            cur.execute("UPDATE products SET unit_price = unit_price + 100 WHERE product_id = %s", (lo + 2,))
            cur.execute("UPDATE inventory SET quantity_on_hand = 999 WHERE inventory_id = %s", (lo + 3,))
            cur.execute("INSERT INTO customers (customer_id, email, first_name, customer_tier) "
                        "VALUES (%s, 'late@example.com', 'Late', 'silver')", (lo + 500,))
            cur.execute("DELETE FROM customers WHERE customer_id = %s", (lo + 19,))  # no orders of its own left
            cur.execute("DELETE FROM orders WHERE customer_id = %s", (lo + 19,))


def wait_published(pg, lo):
    """A marker change per table, waited for in Kafka: then everything before it is in the topics."""
    marks = {}
    with pg.cursor() as cur:
        m = random.randint(0, 10 ** 9)
        cur.execute("UPDATE customers SET customer_tier = %s WHERE customer_id = %s", (f"m{m}", lo))
        cur.execute("UPDATE customers SET customer_tier = 'bronze' WHERE customer_id = %s", (lo,))
        marks["customers"] = ("customer_tier", "bronze", "customer_id", lo)
        cur.execute("UPDATE products SET name = %s WHERE product_id = %s", (f"Thing m{m}", lo))
        marks["products"] = ("name", f"Thing m{m}", "product_id", lo)
        cur.execute("UPDATE orders SET item_count = item_count + 10 WHERE order_id = %s RETURNING item_count", (lo,))
        marks["orders"] = ("item_count", cur.fetchone()[0], "order_id", lo)
        cur.execute("UPDATE inventory SET quantity_reserved = %s WHERE inventory_id = %s", (m % 100000, lo))
        marks["inventory"] = ("quantity_reserved", m % 100000, "inventory_id", lo)
    for t, (col, val, key, k) in marks.items():
        def seen(evs, col=col, val=val, key=key, k=k):
            return any(e and (e.get("after") or {}).get(key) == k and e["after"].get(col) == val for e in evs[-2000:])
        got = consume_until(topic_for(t), seen, timeout=180)
        assert seen(got), f"marker of {t} not seen in Kafka"


def check_equal(pg, tmp_path, lo):
    for t in TABLES:
        want = pg_rows(pg, t, lo, lo + 1000)
        assert want, t
        assert delta_rows(str(tmp_path / "delta"), t, lo, lo + 1000) == want, f"delta {t}"
        assert iceberg_rows(str(tmp_path / "iceberg"), t, lo, lo + 1000) == want, f"iceberg {t}"


def test_one_process_four_topics_eight_tables(pg, connector, tmp_path):
    if not os.access(CDCFLOW, os.X_OK):
        pytest.fail("build/cdcflow is not built")
    lo = ID_BASE + random.randrange(0, 700) * 1000
    tag = "%08x" % random.getrandbits(32)
    conf = make_conf(tmp_path, tag)

    make_changes(pg, lo, 0)
    wait_published(pg, lo)
    r = run_all(conf)
    # one table per topic in each format, and nothing else
    assert sorted(os.listdir(tmp_path / "delta")) == sorted(TABLES), r.stderr
    assert sorted(os.listdir(tmp_path / "iceberg" / "analytics")) == sorted(TABLES), r.stderr
    check_equal(pg, tmp_path, lo)

    # the table lines of the config: partition columns per table
    from deltalake import DeltaTable
    assert DeltaTable(str(tmp_path / "delta" / "orders")).metadata().partition_columns == ["status"]
    assert DeltaTable(str(tmp_path / "delta" / "inventory")).metadata().partition_columns == ["warehouse"]
    assert DeltaTable(str(tmp_path / "delta" / "customers")).metadata().partition_columns == []
    from pyiceberg.table import StaticTable
    spec = StaticTable.from_metadata(iceberg_metadata(str(tmp_path / "iceberg"), "orders")).spec()
    assert [f.name for f in spec.fields] == ["status"]

    # each Delta table holds the offsets of its own topic only
    for t in TABLES:
        txn_topics = set()
        log = tmp_path / "delta" / t / "_delta_log"
        for name in os.listdir(log):
            if name.endswith(".json"):
                txn_topics.update(re.findall(r'"appId":"cdcflow-postgres\.public\.(\w+)-', (log / name).read_text()))
        assert txn_topics == {t}, f"{t} has offsets of {txn_topics}"

    # more changes: a second process resumes every table from that table's offsets
    make_changes(pg, lo, 1)
    wait_published(pg, lo)
    run_all(conf)
    check_equal(pg, tmp_path, lo)

    # the same file, running until SIGTERM: changes flow into all eight tables while it runs, and
    # its metrics carry one row set per table
    port = free_port()
    live = subprocess.Popen([CDCFLOW, "run", make_conf(tmp_path, tag, delta_port=port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        make_changes(pg, lo, 2)
        wait_published(pg, lo)
        deadline = time.monotonic() + 180
        while True:
            try:
                check_equal(pg, tmp_path, lo)
                break
            except Exception:  # not equal yet, or a table read between two of its files; retried until the deadline
                if time.monotonic() > deadline or live.poll() is not None:
                    raise
                time.sleep(1)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        for t in TABLES:
            assert f'cdcflow_table_last_version{{table="{t}"}}' in metrics, metrics
        assert re.search(r'cdcflow_events_total\{table="orders",op="update"\} [1-9]', metrics), metrics
    finally:
        live.send_signal(signal.SIGTERM)
        _, err = live.communicate(timeout=120)
    assert live.returncode == 0, err
