"""test_stack.py - the local CDC chain works: PostgreSQL changes become Debezium events on Kafka, and the
independent readers (DuckDB delta/iceberg, delta-rs, pyiceberg) the other tests rely on load here."""

import base64
import decimal
import os
import subprocess
import uuid

import pyarrow as pa

from conftest import (CONNECT_URL, ROOT, TABLES, consume_until, duckdb_conn, http_json, topic_for)

# customers exactly as in the system cdcflow replaces (SYSTEM.md), in column order.
CUSTOMERS_COLUMNS = [
    ("customer_id", "integer"), ("email", "character varying"), ("first_name", "character varying"),
    ("last_name", "character varying"), ("phone", "character varying"),
    ("address_line1", "character varying"), ("city", "character varying"), ("state", "character varying"),
    ("postal_code", "character varying"), ("country", "character varying"),
    ("registration_date", "timestamp without time zone"), ("last_updated", "timestamp without time zone"),
    ("is_active", "boolean"), ("customer_tier", "character varying"), ("lifetime_value", "numeric"),
]


def decode_decimal(value, field_schema):
    """Debezium's precise decimals: base64 big-endian two's-complement unscaled value + scale."""
    raw = base64.b64decode(value)
    unscaled = int.from_bytes(raw, "big", signed=True)
    scale = int(field_schema["parameters"]["scale"])
    return decimal.Decimal(unscaled).scaleb(-scale)


def test_stack_status_reports_every_component_up(stack):
    r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "status"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("postgres", "kafka", "connect", "registry"):
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(name))
        assert " up " in line, line
    assert "Debezium PostgreSQL 3." in r.stdout


def test_stack_start_again_is_harmless(stack):
    r = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "start"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "starting" not in r.stdout, r.stdout
    for name in ("postgres", "kafka", "connect"):
        assert any(ln.startswith(f"stack: {name}") and ("already running" in ln or "reusing" in ln)
                   for ln in r.stdout.splitlines()), r.stdout


def test_source_schema(pg):
    with pg.cursor() as cur:
        cur.execute("SHOW wal_level")
        assert cur.fetchone()[0] == "logical"
        cur.execute("""SELECT column_name, data_type FROM information_schema.columns
                       WHERE table_schema = 'public' AND table_name = 'customers' ORDER BY ordinal_position""")
        assert cur.fetchall() == CUSTOMERS_COLUMNS
        cur.execute("""SELECT numeric_precision, numeric_scale FROM information_schema.columns
                       WHERE table_schema = 'public' AND table_name = 'customers'
                         AND column_name = 'lifetime_value'""")
        assert cur.fetchone() == (10, 2)
        # Full old rows in the WAL, so "before" is complete for updates and deletes.
        cur.execute("""SELECT c.relname, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = 'public' AND c.relname = ANY(%s) ORDER BY c.relname""",
                    (list(TABLES),))
        assert cur.fetchall() == sorted((t, "f") for t in TABLES)
        cur.execute("""SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint
                       WHERE contype = 'f' AND conrelid = 'public.orders'::regclass""")
        assert cur.fetchall() == [("orders", "customers")]


def test_connector_running_with_expected_config(connector):
    code, cfg = http_json("GET", f"/connectors/{connector['name']}/config")
    assert code == 200, cfg
    assert cfg["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert cfg["plugin.name"] == "pgoutput"
    assert cfg["slot.name"] == "postgres_debezium_slot"
    assert cfg["topic.prefix"] == "postgres"
    assert set(cfg["table.include.list"].split(",")) == {f"public.{t}" for t in TABLES}
    code, plugins = http_json("GET", "/connector-plugins")
    assert any(p["class"].endswith("PostgresConnector") and p["version"].startswith("3.") for p in plugins), \
        f"{CONNECT_URL}/connector-plugins: {plugins}"


def test_customer_insert_update_delete_become_debezium_events(pg, connector):
    email = f"it-{uuid.uuid4().hex[:12]}@example.com"
    with pg.cursor() as cur:
        cur.execute("""INSERT INTO customers (email, first_name, last_name, phone, address_line1, city, state,
                           postal_code, country, registration_date, last_updated, is_active, customer_tier,
                           lifetime_value)
                       VALUES (%s, 'Ada', 'Lovelace', '+44 20 7946 0000', '12 St James Sq', 'London', 'LDN',
                               'SW1Y 4JH', 'UK', '2024-03-01 10:00:00', '2024-03-01 10:00:00', true, 'gold',
                               1234.56)
                       RETURNING customer_id""", (email,))
        cid = cur.fetchone()[0]
        cur.execute("UPDATE customers SET customer_tier = 'platinum', lifetime_value = 2000.10, "
                    "last_updated = '2024-03-02 11:30:00' WHERE customer_id = %s", (cid,))
        cur.execute("DELETE FROM customers WHERE customer_id = %s", (cid,))

    def ours(p):
        row = p and (p["after"] or p["before"])
        return row is not None and row.get("email") == email

    def delete_and_next_seen(got):
        idx = [i for i, p in enumerate(got) if ours(p)]
        return len(idx) >= 3 and len(got) > idx[2] + 1

    events = consume_until(topic_for("customers"), delete_and_next_seen, timeout=60)
    mine = [p for p in events if ours(p)]
    assert [p["op"] for p in mine] == ["c", "u", "d"], f"got {len(events)} events, ours: {mine}"
    c, u, d = mine

    assert c["before"] is None
    assert c["after"]["customer_id"] == cid
    assert (c["after"]["first_name"], c["after"]["last_name"], c["after"]["city"]) == ("Ada", "Lovelace", "London")
    assert c["after"]["is_active"] is True
    assert u["before"]["customer_tier"] == "gold" and u["after"]["customer_tier"] == "platinum"
    assert d["before"]["customer_id"] == cid and d["after"] is None
    for p in mine:
        assert p["source"]["db"] == "cdcdb"
        assert (p["source"]["schema"], p["source"]["table"]) == ("public", "customers")
        assert p["source"]["connector"] == "postgresql"
        assert isinstance(p["source"]["lsn"], int)
    assert c["source"]["lsn"] < u["source"]["lsn"] < d["source"]["lsn"]
    # A delete is followed by a tombstone (value null) so compacted topics can drop the key.
    assert events[events.index(d) + 1] is None


def test_numeric_and_timestamp_types_carry_their_schema(pg, connector):
    email = f"it-{uuid.uuid4().hex[:12]}@example.com"
    with pg.cursor() as cur:
        cur.execute("INSERT INTO customers (email, registration_date, lifetime_value) "
                    "VALUES (%s, '2024-01-02 03:04:05.678901', -98.76)", (email,))

    def ours(v):
        after = v and v["payload"]["after"]
        return after is not None and after.get("email") == email

    events = consume_until(topic_for("customers"), lambda got: any(map(ours, got)), envelope=True)
    found = next((v for v in events if ours(v)), None)
    assert found is not None, "insert did not reach Kafka within 60s"
    after_schema = next(f for f in found["schema"]["fields"] if f["field"] == "after")
    fields = {f["field"]: f for f in after_schema["fields"]}
    lv = fields["lifetime_value"]
    assert lv["name"] == "org.apache.kafka.connect.data.Decimal" and lv["parameters"]["scale"] == "2"
    assert decode_decimal(found["payload"]["after"]["lifetime_value"], lv) == decimal.Decimal("-98.76")
    assert fields["registration_date"]["name"] == "io.debezium.time.MicroTimestamp"
    # 2024-01-02T03:04:05.678901 UTC in microseconds since the epoch.
    assert found["payload"]["after"]["registration_date"] == 1704164645678901


def test_every_source_table_streams(pg, connector):
    tag = uuid.uuid4().hex[:10]
    with pg.cursor() as cur:
        cur.execute("INSERT INTO customers (email, first_name) VALUES (%s, 'Grace') RETURNING customer_id",
                    (f"it-{tag}@example.com",))
        cid = cur.fetchone()[0]
        cur.execute("INSERT INTO products (sku, name, description, category, unit_price, weight_kg) "
                    "VALUES (%s, 'Widget', 'a widget', 'tools', 19.99, 0.250) RETURNING product_id",
                    (f"SKU-{tag}",))
        pid = cur.fetchone()[0]
        cur.execute("INSERT INTO inventory (product_id, warehouse, quantity_on_hand, unit_cost, last_restocked) "
                    "VALUES (%s, %s, 40, 7.5, now()) RETURNING inventory_id", (pid, f"wh-{tag}"))
        iid = cur.fetchone()[0]
        cur.execute("INSERT INTO orders (customer_id, total_amount, is_gift, notes) "
                    "VALUES (%s, 59.97, true, %s) RETURNING order_id", (cid, tag))
        oid = cur.fetchone()[0]
        cur.execute("UPDATE orders SET status = 'shipped', shipped_at = now() WHERE order_id = %s", (oid,))

    want = {"products": ("product_id", pid, ["c"]), "inventory": ("inventory_id", iid, ["c"]),
            "orders": ("order_id", oid, ["c", "u"])}
    for table, (key, ident, ops) in want.items():
        def ours(p, key=key, ident=ident):
            row = p and (p["after"] or p["before"])
            return row is not None and row.get(key) == ident

        events = consume_until(topic_for(table), lambda got, ours=ours, n=len(ops): sum(map(ours, got)) >= n)
        mine = [p for p in events if ours(p)]
        assert [p["op"] for p in mine] == ops, f"{table}: {mine}"
        assert mine[0]["source"]["table"] == table
        if table == "orders":
            # The update carries the full old row (REPLICA IDENTITY FULL), not just the key.
            assert mine[1]["before"]["status"] == "pending" and mine[1]["after"]["status"] == "shipped"
            assert mine[1]["before"]["is_gift"] is True and mine[1]["before"]["notes"] == tag


def test_duckdb_reads_delta_and_iceberg_tables(tmp_path):
    """The DuckDB extensions from PyPI load offline and read tables written by delta-rs and pyiceberg."""
    from deltalake import write_deltalake
    from pyiceberg.catalog.sql import SqlCatalog

    data = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", "c"]})
    write_deltalake(str(tmp_path / "delta"), data)
    write_deltalake(str(tmp_path / "delta"), data.slice(0, 1), mode="append")

    cat = SqlCatalog("it", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=f"file://{tmp_path}/warehouse")
    cat.create_namespace("ns")
    table = cat.create_table("ns.t", schema=data.schema)
    table.append(data)
    table.delete("id = 2")
    table = cat.load_table("ns.t")
    assert table.metadata.format_version == 2

    con = duckdb_conn()
    try:
        loaded = dict(con.sql("SELECT extension_name, loaded FROM duckdb_extensions() "
                              "WHERE extension_name IN ('delta', 'iceberg', 'avro')").fetchall())
        assert loaded == {"delta": True, "iceberg": True, "avro": True}
        assert con.sql(f"SELECT count(*), sum(id) FROM delta_scan('{tmp_path / 'delta'}')").fetchone() == (4, 7)
        got = con.sql(f"SELECT id, name FROM iceberg_scan('{table.metadata_location}') ORDER BY id").fetchall()
        assert got == [(1, "a"), (3, "c")]
    finally:
        con.close()
