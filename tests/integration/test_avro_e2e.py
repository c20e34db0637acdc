"""test_avro_e2e.py - the same PostgreSQL changes through both connectors of the stack, JSON with schemas
(postgres.public.*) and Avro behind the schema registry (avro.public.*, Confluent framing), into Delta and
Iceberg tables in append and upsert mode, all four tables through one `cdcflow run` line per format.  The tables from the Avro topics must equal the tables from the
JSON topics row for row and type for type, as deltalake, DuckDB and pyiceberg read them, and the upsert
tables must equal PostgreSQL."""

import os
import random
import subprocess
import time
import uuid

import pytest

from conftest import CDCFLOW, KAFKA_BOOTSTRAP, REGISTRY_URL, duckdb_conn, pg_connect
from test_registry import avro_connector, registry_up  # noqa: F401  (fixtures)

CCOMPAT = REGISTRY_URL + "/apis/ccompat/v7"
# Columns that say when cdcflow saw a row, not what the row is: they differ between any two runs.
# _event_timestamp_ms is when the connector (one per format) handled the change.
RUN_COLS = {"_ingestion_timestamp", "_processed_timestamp", "_kafka_timestamp", "_kafka_offset",
            "_kafka_partition", "_pipeline_id", "_event_timestamp_ms"}


def run(sink, topic, fmt, mode, where, workdir):
    """cdcflow SINK over everything on `topic` now, as one --available-now run."""
    args = [CDCFLOW, sink, "--bootstrap", KAFKA_BOOTSTRAP, "--topic", topic, "--mode", mode, "--available-now",
            "--group-id", "cdcflow-avro-e2e-" + uuid.uuid4().hex[:8], "--metrics-port", "0",
            "--checkpoint-location", os.path.join(workdir, "ck-" + uuid.uuid4().hex[:8]),
            "--trigger-interval", "200ms", "--log-level", "warn"]
    if fmt == "avro":
        args += ["--value-format", "avro", "--schema-registry", CCOMPAT, "--registry-framing", "confluent"]
    args += ["--table-path", where] if sink == "delta" else \
        ["--warehouse", os.path.dirname(os.path.dirname(where)), "--namespace", os.path.basename(os.path.dirname(where)),
         "--table", os.path.basename(where)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, " ".join(args) + "\n" + r.stderr[-3000:]


TABLES = {"customers": "customer_id", "orders": "order_id", "products": "product_id", "inventory": "inventory_id"}


def run_all(sink, fmt, mode, root, workdir):
    """`cdcflow run` of a run file with one line: all four topics of `fmt`, a table each ({table})."""
    prefix = "avro" if fmt == "avro" else "postgres"
    line = [sink, "--topic", f"'^{prefix}\\.public\\.(customers|orders|products|inventory)$'", "--mode", mode,
            "--available-now", "--group-id", "cdcflow-avro-all-" + uuid.uuid4().hex[:8], "--metrics-port", "0",
            "--checkpoint-location", os.path.join(workdir, "ck-" + uuid.uuid4().hex[:8]),
            "--trigger-interval", "200ms", "--log-level", "warn"]
    if fmt == "avro":
        line += ["--value-format", "avro", "--schema-registry", CCOMPAT]
    line += ["--table-path", os.path.join(root, "{table}")] if sink == "delta" else \
        ["--warehouse", root, "--namespace", "ns", "--table", "{table}"]
    conf = os.path.join(workdir, f"{sink}-{fmt}-{mode}.conf")
    with open(conf, "w") as f:
        f.write(" ".join(line) + "\n")
    r = subprocess.run([CDCFLOW, "run", conf], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, open(conf).read() + r.stderr[-3000:]


def table_dir(sink, root, table):
    return os.path.join(root, "ns", table) if sink == "iceberg" else os.path.join(root, table)


def read(sink, where, reader):
    """The table as an Arrow table, by a reader we did not write."""
    if sink == "delta" and reader == "deltalake":
        from deltalake import DeltaTable
        return DeltaTable(where).to_pyarrow_table()
    if sink == "delta":
        con = duckdb_conn()
        try:
            con.execute("SET TimeZone = 'UTC'")
            return con.sql(f"SELECT * FROM delta_scan('{where}')").to_arrow_table()
        finally:
            con.close()
    from pyiceberg.table import StaticTable
    hint = open(os.path.join(where, "metadata", "version-hint.text")).read().strip()
    return StaticTable.from_metadata(os.path.join(where, "metadata", f"v{hint}.metadata.json")).scan().to_arrow()


def rows_of(t, key, ids, cols):
    """Sorted tuples of the rows of `ids`, over `cols`."""
    d = t.select(cols).to_pylist()
    return sorted((tuple(r[c] for c in cols) for r in d if r[key] in ids), key=repr)


def common_cols(a, b):
    cols = [c for c in a.column_names if c not in RUN_COLS]
    assert sorted(cols) == sorted(c for c in b.column_names if c not in RUN_COLS)
    for c in cols:        # type for type
        assert a.schema.field(c).type == b.schema.field(c).type, (c, a.schema.field(c).type, b.schema.field(c).type)
    return cols


@pytest.fixture(scope="module")
def changes(avro_connector):  # noqa: F811
    """Customers and orders created, updated and deleted once both connectors stream; (customer ids,
    order ids)."""
    con = pg_connect()
    base = 7_000_000 + random.randrange(0, 900) * 1000
    cust = list(range(base, base + 12))
    orders = []
    with con.cursor() as cur:
        cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (base, base + 1000))
        for i, c in enumerate(cust):
            cur.execute("INSERT INTO customers (customer_id, email, first_name, last_name, city, state, country, "
                        "registration_date, is_active, customer_tier, lifetime_value) VALUES "
                        "(%s, %s, 'Avro', %s, 'Lyon', NULL, 'FR', '2024-12-31 23:59:59.123456', %s, 'gold', %s)",
                        (c, f"avro-{c}@example.com", f"N{i}", i % 2 == 0, 10.5 * i))
            cur.execute("INSERT INTO orders (customer_id, status, item_count, total_amount, notes, shipped_at) "
                        "VALUES (%s, 'pending', %s, %s, %s, %s) RETURNING order_id",
                        (c, i + 1, 19.99 * (i + 1), None if i % 3 else "gift wrap", None if i % 2 else
                         "2025-01-02 03:04:05.678901+02"))
            orders.append(cur.fetchone()[0])
        for c in cust[:4]:
            cur.execute("UPDATE customers SET email = %s, lifetime_value = lifetime_value + 1 WHERE customer_id = %s",
                        (f"avro-new-{c}@example.com", c))
        for o in orders[:3]:
            cur.execute("UPDATE orders SET status = 'shipped', notes = 'after' WHERE order_id = %s", (o,))
        cur.execute("DELETE FROM orders WHERE order_id = ANY(%s)", (orders[-2:],))
        prods, inv = [], []
        for i in range(4):
            cur.execute("INSERT INTO products (sku, name, category, unit_price, weight_kg) VALUES (%s, %s, 'avro', %s, "
                        "%s) RETURNING product_id", (f"avro-{base}-{i}", f"Thing {i}", 3.25 * (i + 1), None if i % 2
                                                     else 1.125))
            prods.append(cur.fetchone()[0])
            cur.execute("INSERT INTO inventory (product_id, warehouse, quantity_on_hand, unit_cost, last_restocked) "
                        "VALUES (%s, 'avro-w', %s, 1.2345, '2025-03-04 05:06:07+00') RETURNING inventory_id",
                        (prods[-1], 10 * i))
            inv.append(cur.fetchone()[0])
        cur.execute("UPDATE products SET unit_price = unit_price + 1 WHERE product_id = %s", (prods[0],))
        cur.execute("UPDATE inventory SET quantity_on_hand = 99 WHERE inventory_id = %s", (inv[1],))
        cur.execute("DELETE FROM products WHERE product_id = %s", (prods[-1],))     # cascades its inventory
        cur.execute("DELETE FROM customers WHERE customer_id = %s", (cust[-1],))   # cascades its orders
    con.close()
    time.sleep(3)      # both connectors poll every 50 ms; Connect flushes in well under this
    return {"customers": set(cust), "orders": set(orders), "products": set(prods), "inventory": set(inv)}


def where_of(tmp_path, sink, fmt, table):
    """The topic and table location of `table` from the `fmt` topics (Iceberg: WAREHOUSE/ns/TABLE)."""
    topic = f"{'avro' if fmt == 'avro' else 'postgres'}.public.{table}"
    where = tmp_path / fmt / "wh" / "ns" / table if sink == "iceberg" else tmp_path / fmt / table
    os.makedirs(where.parent, exist_ok=True)
    return topic, str(where)


@pytest.mark.parametrize("sink", ["delta", "iceberg"])
@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_avro_topics_make_the_json_tables(tmp_path, changes, sink, mode):
    """One `cdcflow run` line over the four Avro topics and one over the four JSON topics."""
    readers = ["deltalake", "duckdb"] if sink == "delta" else ["pyiceberg"]
    got = {}
    for fmt in ("json", "avro"):
        root = str(tmp_path / fmt)
        # The connector may still be publishing the last changes: run again until every table has its
        # last change (upsert: the deleted row is gone; append: a delete is there), at most 30 s.
        deadline = time.monotonic() + 30
        while True:
            run_all(sink, fmt, mode, root, str(tmp_path))
            t = {table: read(sink, table_dir(sink, root, table), readers[0]) for table in TABLES}
            done = True
            for table, key in TABLES.items():
                ids = changes[table]
                if mode == "append":
                    done &= "DELETE" in [r["_cdc_operation"] for r in t[table].select([key, "_cdc_operation"]).to_pylist()
                                         if r[key] in ids]
                else:
                    done &= len({k for k in t[table].column(key).to_pylist() if k in ids}) < len(ids)
            if done:
                break
            assert time.monotonic() < deadline, f"{fmt} topics: the changes did not arrive in 30 s"
            time.sleep(1)
        got[fmt] = {table: {r: read(sink, table_dir(sink, root, table), r) for r in readers} for table in TABLES}
    for table, key in TABLES.items():
        for r in readers:
            a, b = got["json"][table][r], got["avro"][table][r]
            cols = common_cols(a, b)
            want = rows_of(a, key, changes[table], cols)
            assert want, f"{table}: no rows of the test in the JSON table"
            assert rows_of(b, key, changes[table], cols) == want, f"{sink} {mode} {table} read by {r}: Avro != JSON"
        if mode == "upsert" and table in ("customers", "orders"):
            assert_equals_postgres(got["avro"][table][readers[0]], table, key, changes[table])


def assert_equals_postgres(t, table, key, ids):
    """The upsert table holds PostgreSQL's rows of `ids` (orders: every column cdcflow passes through;
    customers: the keys and emails the transform keeps)."""
    con = pg_connect()
    try:
        with con.cursor() as cur:
            if table == "orders":
                cur.execute("SELECT order_id, customer_id, status, item_count, total_amount, notes, order_date "
                            "FROM orders WHERE order_id = ANY(%s)", (list(ids),))
                cols = ["order_id", "customer_id", "status", "item_count", "total_amount", "notes", "order_date"]
            else:
                cur.execute("SELECT customer_id, email FROM customers WHERE customer_id = ANY(%s)", (list(ids),))
                cols = ["customer_id", "email"]
            want = sorted(cur.fetchall())
    finally:
        con.close()
    live = [r for r in t.select(cols + ["_cdc_operation"]).to_pylist() if r[key] in ids]
    live = [r for r in live if r["_cdc_operation"] != "DELETE"]      # soft deletes, where the table keeps them
    got = sorted(tuple(r[c] for c in cols) for r in live)
    assert got == want


def subject_versions(subject):
    """Versions of a registry subject ([] when it has none yet), through the Confluent API."""
    import json
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"{CCOMPAT}/subjects/{subject}/versions", timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return []
        raise


def latest_schema(subject):
    import json
    import urllib.request
    with urllib.request.urlopen(f"{CCOMPAT}/subjects/{subject}/versions/latest", timeout=10) as r:
        return json.loads(json.loads(r.read())["schema"])


@pytest.mark.parametrize("sink", ["delta", "iceberg"])
def test_a_column_added_in_postgres_is_a_new_registry_version_and_a_new_column(tmp_path, avro_connector, sink):  # noqa: F811
    """ALTER TABLE ... ADD COLUMN: the Avro connector registers a new writer schema (a new version of the
    subject, a new id), cdcflow fetches it by that id and the table gains the column, as from the JSON
    topic.  The column has a name of this run, so the test runs again on a stack that keeps its data."""
    col = "note_" + uuid.uuid4().hex[:8]
    subject = "avro.public.inventory-value"
    con = pg_connect()
    sku = "avro-" + uuid.uuid4().hex[:12]
    with con.cursor() as cur:
        cur.execute("INSERT INTO products (sku, name, unit_price) VALUES (%s, 'Avro thing', 9.5) RETURNING product_id",
                    (sku,))
        pid = cur.fetchone()[0]
        cur.execute("INSERT INTO inventory (product_id, warehouse, quantity_on_hand) VALUES (%s, 'w1', 5) "
                    "RETURNING inventory_id", (pid,))
        before_id = cur.fetchone()[0]
    deadline = time.monotonic() + 30
    while not subject_versions(subject):        # the subject exists before the change
        assert time.monotonic() < deadline, f"no {subject} in the registry 30 s after an inventory insert"
        time.sleep(0.5)
    versions = subject_versions(subject)
    with con.cursor() as cur:
        cur.execute(f"ALTER TABLE inventory ADD COLUMN {col} TEXT")
        cur.execute(f"INSERT INTO inventory (product_id, warehouse, quantity_on_hand, {col}) "
                    "VALUES (%s, 'w2', 7, 'added') RETURNING inventory_id", (pid,))
        after_id = cur.fetchone()[0]
    con.close()
    ids = {before_id, after_id}
    deadline = time.monotonic() + 30
    while len(subject_versions(subject)) <= len(versions):
        assert time.monotonic() < deadline, f"{subject}: no new version 30 s after ADD COLUMN {col}"
        time.sleep(0.5)
    after = latest_schema(subject)
    # the row record is defined where it first appears (before) and named after that
    row = next(t for f in after["fields"] if f["name"] in ("before", "after") for t in f["type"] if isinstance(t, dict))
    assert col in [f["name"] for f in row["fields"]]

    got = {}
    for fmt in ("json", "avro"):
        topic, where = where_of(tmp_path, sink, fmt, "inventory")
        deadline = time.monotonic() + 30
        while True:
            run(sink, topic, fmt, "upsert", where, str(tmp_path))
            t = read(sink, where, "deltalake" if sink == "delta" else "pyiceberg")
            if col in t.column_names and after_id in t.column("inventory_id").to_pylist():
                break
            assert time.monotonic() < deadline, f"{topic}: the new column did not arrive in 30 s"
            time.sleep(1)
        got[fmt] = t
        notes = {r["inventory_id"]: r[col] for r in t.select(["inventory_id", col]).to_pylist() if r["inventory_id"] in ids}
        assert notes == {before_id: None, after_id: "added"}, fmt
    cols = common_cols(got["json"], got["avro"])
    assert rows_of(got["avro"], "inventory_id", ids, cols) == rows_of(got["json"], "inventory_id", ids, cols)


class Proxy:
    """A TCP proxy on loopback in front of the registry, which the test starts late: until then cdcflow's
    registry address refuses connections, as a registry that is down does."""

    def __init__(self, upstream_port):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()                      # free until start(): connections are refused
        self.upstream = upstream_port
        self.sock = None

    def start(self):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)

        def pump(a, b):
            try:
                while (data := a.recv(65536)):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for x in (a, b):
                    try:
                        x.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        def serve():
            while True:
                try:
                    c, _ = self.sock.accept()
                except OSError:
                    return
                u = socket.create_connection(("127.0.0.1", self.upstream))
                threading.Thread(target=pump, args=(c, u), daemon=True).start()
                threading.Thread(target=pump, args=(u, c), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def stop(self):
        if self.sock:
            self.sock.close()


def test_a_registry_down_for_20_s_is_waited_out(tmp_path, changes):
    """cdcflow starts on the Avro topic while its registry address refuses connections for 20 s: it
    waits (no message is dead-lettered, nothing is committed wrong), then fetches the schemas and makes the
    same table as from the JSON topic."""
    import urllib.parse
    cust = changes["customers"]
    proxy = Proxy(urllib.parse.urlparse(REGISTRY_URL).port)
    topic, where = where_of(tmp_path, "delta", "avro", "customers")
    dlq = tmp_path / "dead-letters.jsonl"
    args = [CDCFLOW, "delta", "--bootstrap", KAFKA_BOOTSTRAP, "--topic", topic, "--mode", "append", "--available-now",
            "--group-id", "cdcflow-avro-down-" + uuid.uuid4().hex[:8], "--metrics-port", "0",
            "--checkpoint-location", str(tmp_path / "ck"), "--dlq", f"file:{dlq}", "--log-level", "info",
            "--value-format", "avro", "--schema-registry", f"http://127.0.0.1:{proxy.port}/apis/ccompat/v7",
            "--table-path", where]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(20)
        assert proc.poll() is None, "cdcflow gave up on a registry down for 20 s: " + proc.stderr.read()[-2000:]
        proxy.start()
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.stop()
    assert proc.returncode == 0, err[-3000:]
    assert not dlq.exists() or dlq.stat().st_size == 0, dlq.read_text()[:2000] + err[-4000:]
    _, jwhere = where_of(tmp_path, "delta", "json", "customers")
    run("delta", "postgres.public.customers", "json", "append", jwhere, str(tmp_path))
    a, b = read("delta", jwhere, "deltalake"), read("delta", where, "deltalake")
    cols = common_cols(a, b)
    assert rows_of(b, "customer_id", cust, cols) == rows_of(a, "customer_id", cust, cols) != []
