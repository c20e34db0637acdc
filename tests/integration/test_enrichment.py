"""test_enrichment.py - the total_orders enrichment join on the real stack: a customers pipeline
with --total-orders-from postgres.public.orders, fed by Debezium while `cdcflow generate` and explicit
re-assignments write to PostgreSQL, keeps total_orders of every customer equal to
`SELECT customer_id, count(*) FROM orders GROUP BY 1` (0 for customers without orders).

Read back with deltalake and DuckDB (Delta) and pyiceberg (Iceberg), never with cdcflow; once after a
clean run and once after a kill -9 loop (the state is exactly once with the table).  The Delta change
feed shows each count change of a customer as an update (pre- and post-image).

Other tests write to these PostgreSQL tables too: the comparison is made while the pipeline keeps
running, until both sides agree or a deadline passes, and covers every customer.
"""

import os
import random
import signal
import subprocess
import time
import uuid

import pytest
from conftest import CDCFLOW, duckdb_conn

ID_BASE = 9_400_000


def pg_counts(pg):
    with pg.cursor() as cur:
        cur.execute("SELECT c.customer_id, count(o.order_id) FROM customers c "
                    "LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY 1")
        return dict(cur.fetchall())


def delta_counts(path):
    from deltalake import DeltaTable
    t = DeltaTable(str(path)).to_pyarrow_table(columns=["customer_id", "total_orders"]).to_pylist()
    out = {}
    for r in t:
        assert r["customer_id"] not in out, "customer %d twice" % r["customer_id"]
        out[r["customer_id"]] = r["total_orders"]
    return out


def duckdb_counts(path):
    con = duckdb_conn()
    return dict(con.sql("SELECT customer_id, total_orders FROM delta_scan('%s')" % path).fetchall())


def iceberg_rows(warehouse, cols):
    from pyiceberg.table import StaticTable
    d = os.path.join(str(warehouse), "ns", "customers", "metadata")
    hint = open(os.path.join(d, "version-hint.text")).read().strip()
    t = StaticTable.from_metadata(os.path.join(d, "v%s.metadata.json" % hint))
    return t.scan(selected_fields=tuple(cols)).to_arrow().to_pylist()


def emails(kind, where, base):
    """email of our block's customers: a count update keeps every other column of the row."""
    if kind == "delta":
        from deltalake import DeltaTable
        rows = DeltaTable(str(where)).to_pyarrow_table(columns=["customer_id", "email"]).to_pylist()
    else:
        rows = iceberg_rows(where, ["customer_id", "email"])
    return {r["customer_id"]: r["email"] for r in rows if base <= r["customer_id"] < base + 10}


def iceberg_counts(warehouse):
    rows = iceberg_rows(warehouse, ["customer_id", "total_orders"])
    out = {}
    for r in rows:
        assert r["customer_id"] not in out, "customer %d twice" % r["customer_id"]
        out[r["customer_id"]] = r["total_orders"]
    return out


def argv(kind, where, group):
    loc = (["--table-path", str(where)] if kind == "delta"
           else ["--warehouse", str(where), "--namespace", "ns", "--table", "customers"])
    return [CDCFLOW, kind, "--mode", "upsert", "--topic", "postgres.public.customers",
            "--total-orders-from", "postgres.public.orders", "--group-id", group, "--metrics-port", "0",
            "--trigger-interval", "500ms", "--dlq", "off", "--log-level", "warn"] + loc


def scenario(pg, base, phase=None):
    """Orders created (phase 0), then re-assigned and deleted (phase 1), for a block of customers of our
    own; the last customer never has an order.  No phase: both."""
    if phase is None:
        scenario(pg, base, 0)
        scenario(pg, base, 1)
        return
    with pg.cursor() as cur:
        if phase == 1:
            for i in range(0, 40, 5):       # re-assign
                cur.execute("UPDATE orders SET customer_id = %s WHERE order_id = %s", (base + (i + 3) % 8, base + i))
            for i in range(1, 40, 9):       # delete
                cur.execute("DELETE FROM orders WHERE order_id = %s", (base + i,))
            cur.execute("UPDATE orders SET status = 'shipped' WHERE order_id = %s", (base + 2,))   # no move
            return
        cur.execute("DELETE FROM orders WHERE customer_id >= %s AND customer_id < %s", (base, base + 100))
        cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (base, base + 100))
        for i in range(10):
            cur.execute("INSERT INTO customers (customer_id, email, first_name, last_name, customer_tier) "
                        "VALUES (%s, %s, 'En', %s, 'bronze')", (base + i, "en%d@example.com" % (base + i), "R%d" % i))
        for i in range(40):
            cur.execute("INSERT INTO orders (order_id, customer_id, total_amount, item_count, status) "
                        "VALUES (%s, %s, 10, 1, 'pending')", (base + i, base + i % 7))


def reassign_generated(pg, rnd, since):
    """Move some of the orders `generate` made to other new customers."""
    with pg.cursor() as cur:
        cur.execute("SELECT order_id FROM orders WHERE order_id > %s AND order_id < %s ORDER BY 1",
                    (since[1], ID_BASE))
        orders = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT customer_id FROM customers WHERE customer_id > %s AND customer_id < %s ORDER BY 1",
                    (since[0], ID_BASE))
        custs = [r[0] for r in cur.fetchall()]
        for o in rnd.sample(orders, min(len(orders), 60)) if custs else []:
            cur.execute("UPDATE orders SET customer_id = %s WHERE order_id = %s", (rnd.choice(custs), o))


def high_ids(pg):
    with pg.cursor() as cur:
        cur.execute("SELECT (SELECT coalesce(max(customer_id), 0) FROM customers WHERE customer_id < %s), "
                    "(SELECT coalesce(max(order_id), 0) FROM orders WHERE order_id < %s)", (ID_BASE, ID_BASE))
        return cur.fetchone()


def generate(seed, rate="0"):
    return subprocess.Popen([CDCFLOW, "generate", "--seed", str(seed), "--customers", "150", "--orders", "500",
                             "--products", "5", "--updates", "20%", "--deletes", "5%", "--new-rows-only",
                             "--rate", rate], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_equal(pg, read, timeout=240):
    """Until the table's counts equal PostgreSQL's for every customer (the pipeline is running)."""
    deadline = time.monotonic() + timeout
    diff = None
    while time.monotonic() < deadline:
        try:
            got = read()
        except Exception as e:  # noqa: BLE001 - the table may not exist yet
            diff = "unreadable: %s" % e
            time.sleep(2)
            continue
        want = pg_counts(pg)
        diff = {k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)}
        if not diff:
            return want
        time.sleep(2)
    pytest.fail("total_orders differs from PostgreSQL for %d customers, e.g. %s" %
                (len(diff), dict(list(diff.items())[:10]) if isinstance(diff, dict) else diff))


def start(cmd, log):
    """cdcflow in the background, its log to a file (a pipe nobody reads could fill and block it)."""
    with open(log, "a") as f:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f)


def tail(log):
    return open(log).read()[-3000:]


def stop(p, log):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    assert p.returncode == 0, tail(log)


@pytest.fixture
def base():
    return ID_BASE + random.Random(uuid.uuid4().int).randrange(0, 500) * 100


def test_total_orders_equals_postgres_delta(tmp_path, pg, connector, base):
    table = tmp_path / "customers"
    log = tmp_path / "cdcflow.log"
    since = high_ids(pg)
    # as a run-file line (the kill test below uses the flags of `cdcflow delta`)
    conf = tmp_path / "enrich.conf"
    conf.write_text("# customers with total_orders\n" +
                    " ".join("'%s'" % a for a in argv("delta", table, "cdcflow-it-enrich-" + uuid.uuid4().hex[:8])[1:])
                    + "\n")
    p = start([CDCFLOW, "run", str(conf)], log)
    try:
        scenario(pg, base, 0)
        wait_equal(pg, lambda: delta_counts(table))
        # the customers are in the table: what moves their counts now are updates
        g = generate(101)
        scenario(pg, base, 1)
        assert g.wait(timeout=300) == 0, g.stderr.read()
        reassign_generated(pg, random.Random(5), since)
        want = wait_equal(pg, lambda: delta_counts(table))
    finally:
        stop(p, log)
    # after a clean stop, through another reader
    assert duckdb_counts(table) == delta_counts(table)
    assert want[base + 9] == 0 and want[base] > 0

    # the change feed: the count of a customer changes by updates, pre- and post-image each
    from deltalake import DeltaTable
    cdf = DeltaTable(str(table)).load_cdf(starting_version=0).read_all().to_pylist()
    mine = sorted((r for r in cdf if r["customer_id"] == base),
                  key=lambda r: (r["_commit_version"], r["_change_type"] != "update_preimage"))
    pre = [r for r in mine if r["_change_type"] == "update_preimage"]
    post = [r for r in mine if r["_change_type"] == "update_postimage"]
    assert len(pre) == len(post) >= 1
    assert any(a["total_orders"] != b["total_orders"] for a, b in zip(pre, post))
    last = [r for r in mine if r["_change_type"] in ("insert", "update_postimage")][-1]
    assert last["total_orders"] == want[base]
    # every other column of an update that only moves the count is the customer's own
    assert all(r["email"] == "en%d@example.com" % base for r in post)


@pytest.mark.parametrize("kind", ["delta", "iceberg"])
def test_total_orders_exactly_once_through_kill_9(tmp_path, pg, connector, base, kind):
    where = tmp_path / ("customers" if kind == "delta" else "warehouse")
    log = tmp_path / "cdcflow.log"
    group = "cdcflow-it-enrich-kill-" + uuid.uuid4().hex[:8]
    rnd = random.Random(base)
    since = high_ids(pg)
    g = generate(202 + base % 1000, rate="300")
    kills = 0
    try:
        scenario(pg, base)
        while g.poll() is None or kills < 6:
            p = start(argv(kind, where, group), log)
            time.sleep(rnd.uniform(0.3, 3.0))
            if p.poll() is not None:
                pytest.fail("cdcflow exited (%s): %s" % (p.returncode, tail(log)))
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
        assert g.wait(timeout=300) == 0, g.stderr.read()
    finally:
        if g.poll() is None:
            g.kill()
    reassign_generated(pg, rnd, since)
    p = start(argv(kind, where, group), log)
    try:
        want = wait_equal(pg, (lambda: delta_counts(where)) if kind == "delta" else (lambda: iceberg_counts(where)))
    finally:
        stop(p, log)
    assert kills >= 6
    assert want[base + 9] == 0
    assert emails(kind, where, base) == {base + i: "en%d@example.com" % (base + i) for i in range(10)}
    if kind == "delta":
        assert duckdb_counts(where) == delta_counts(where)
    # what stays is the chain the table's offsets name: a full state and at most 256 deltas over it
    root = where if kind == "delta" else where / "ns" / "customers"
    files = os.listdir(root / "_cdcflow_state")
    assert 1 <= len(files) <= 257 and all(f.startswith("total_orders-") for f in files)


def test_total_orders_needs_one_fixed_table(tmp_path):
    r = subprocess.run([CDCFLOW, "delta", "--topic", "postgres.public.customers", "--total-orders-from",
                        "postgres.public.orders", "--table-path", str(tmp_path / "{table}"), "--metrics-port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "one fixed table" in r.stderr, r.stderr
    r = subprocess.run([CDCFLOW, "delta", "--total-orders-from", "^orders.*", "--metrics-port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "expected a topic name" in r.stderr, r.stderr
