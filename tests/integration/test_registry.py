"""test_registry.py - the schema registry of the stack (Apicurio Registry) and the Avro connector beside the
JSON one: the same changes arrive on avro.public.* framed the Confluent way (magic 0 + 4-byte schema id),
the registry serves each writer schema by that id, and an Avro reader we did not write (fastavro) decodes
the messages into the rows the JSON connector reports."""

import base64
import decimal
import io
import json
import struct
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import (CDCFLOW, KAFKA_BOOTSTRAP, REGISTRY_URL, consume_until, http_json,
                      topic_for, wait_slot_active)

AVRO_CONNECTOR = "postgres-avro-connector"
AVRO_PREFIX = "avro"
AVRO_SLOT = "avro_debezium_slot"


def registry(method, path, body=None, ctype="application/vnd.schemaregistry.v1+json"):
    """(status, decoded JSON or raw text) of a registry call; status 0 when unreachable."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(REGISTRY_URL + path, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    except (urllib.error.URLError, OSError):
        return 0, None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


@pytest.fixture(scope="session")
def registry_up():
    code, info = registry("GET", "/apis/registry/v3/system/info")
    if code != 200:
        pytest.fail(f"schema registry {REGISTRY_URL} is down (HTTP {code}) - start it with scripts/stack.sh start")
    return info


@pytest.fixture(scope="session")
def avro_connector(connector, registry_up):
    """The Avro connector (cdcflow connector register --format avro), RUNNING beside the JSON one."""
    r = subprocess.run([CDCFLOW, "connector", "register", "--format", "avro", "--wait", "90",
                        "--registry-url", REGISTRY_URL + "/apis/registry/v2"],
                       capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"connector {AVRO_CONNECTOR}: RUNNING" in r.stdout, r.stdout
    wait_slot_active(AVRO_SLOT, AVRO_CONNECTOR)
    return AVRO_CONNECTOR


def consume_raw(topic, done, timeout=60):
    """Raw (key, value) byte pairs of `topic` from the beginning until done(list) or the timeout."""
    from confluent_kafka import Consumer, KafkaError

    c = Consumer({"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": "cdcflow-it-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "topic.metadata.refresh.interval.ms": 1000})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = c.consume(num_messages=1000, timeout=0.5)
            for m in msgs:
                if m.error():
                    if m.error().code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                        continue
                    raise RuntimeError(f"consuming {topic}: {m.error()}")
                got.append((m.key(), m.value()))
            if msgs and done(got):
                break
    finally:
        c.close()
    return got


_schemas = {}


def decode_confluent(raw):
    """(schema id, datum) of a Confluent-framed Avro message, its writer schema fetched from the registry."""
    import fastavro

    assert raw[0] == 0, f"magic byte {raw[0]}, want 0"
    sid = struct.unpack(">I", raw[1:5])[0]
    if sid not in _schemas:
        code, body = registry("GET", f"/apis/ccompat/v7/schemas/ids/{sid}")
        assert code == 200, f"registry has no schema {sid}: HTTP {code} {body}"
        _schemas[sid] = fastavro.parse_schema(json.loads(body["schema"]))
    bio = io.BytesIO(raw[5:])
    datum = fastavro.schemaless_reader(bio, _schemas[sid])
    assert bio.tell() == len(raw) - 5, "bytes left after the datum"
    return sid, datum


def json_row(payload_row, fields):
    """A JSON-converter row with its precise decimals (base64 unscaled + scale) as Decimal, like Avro's."""
    out = dict(payload_row)
    for f in fields:
        if f.get("name") == "org.apache.kafka.connect.data.Decimal" and out.get(f["field"]) is not None:
            unscaled = int.from_bytes(base64.b64decode(out[f["field"]]), "big", signed=True)
            out[f["field"]] = decimal.Decimal(unscaled).scaleb(-int(f["parameters"]["scale"]))
    return out


def test_registry_serves_native_and_confluent_apis(registry_up):
    assert registry_up["name"].startswith("Apicurio Registry"), registry_up
    code, subjects = registry("GET", "/apis/ccompat/v7/subjects")
    assert code == 200 and isinstance(subjects, list), (code, subjects)

    subject = "it-" + uuid.uuid4().hex[:10] + "-value"
    schema = {"type": "record", "name": "T", "namespace": "it",
              "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": ["null", "string"], "default": None}]}
    code, body = registry("POST", f"/apis/ccompat/v7/subjects/{subject}/versions", {"schema": json.dumps(schema)})
    assert code == 200 and isinstance(body.get("id"), int), (code, body)
    sid = body["id"]
    code, got = registry("GET", f"/apis/ccompat/v7/schemas/ids/{sid}")
    assert code == 200 and json.loads(got["schema"]) == schema, (code, got)
    code, got = registry("GET", f"/apis/ccompat/v7/subjects/{subject}/versions/latest")
    assert code == 200 and got["id"] == sid and got["version"] == 1, (code, got)
    # The native API serves the same schema: by content id (v3) and through the artifact (v2).
    code, got = registry("GET", f"/apis/registry/v3/ids/contentIds/{sid}")
    assert code == 200 and got == schema, (code, got)
    code, got = registry("GET", f"/apis/registry/v2/groups/default/artifacts/{subject}")
    assert code == 200 and got == schema, (code, got)
    # Registering the same schema again gives the same id.
    code, body = registry("POST", f"/apis/ccompat/v7/subjects/{subject}/versions", {"schema": json.dumps(schema)})
    assert code == 200 and body["id"] == sid, (code, body)


def test_avro_connector_publishes_the_same_changes_as_json(pg, connector, avro_connector):
    tag = uuid.uuid4().hex[:10]
    with pg.cursor() as cur:
        cur.execute("INSERT INTO customers (email, first_name, lifetime_value, registration_date) "
                    "VALUES (%s, 'Avro', 12.34, '2024-01-02 03:04:05.678901') RETURNING customer_id",
                    (f"avro-{tag}@example.com",))
        cid = cur.fetchone()[0]
        cur.execute("INSERT INTO products (sku, name, unit_price, weight_kg) VALUES (%s, 'Gadget', 5.25, 1.5) "
                    "RETURNING product_id", (f"AV-{tag}",))
        pid = cur.fetchone()[0]
        cur.execute("INSERT INTO inventory (product_id, warehouse, quantity_on_hand, unit_cost, last_restocked) "
                    "VALUES (%s, %s, 3, 0.1234, '2024-05-06 07:08:09+00') RETURNING inventory_id", (pid, f"av-{tag}"))
        iid = cur.fetchone()[0]
        cur.execute("INSERT INTO orders (customer_id, total_amount, notes, shipped_at) "
                    "VALUES (%s, 99.99, %s, '2024-06-01 10:00:00.5+02') RETURNING order_id", (cid, tag))
        oid = cur.fetchone()[0]
        cur.execute("UPDATE orders SET status = 'shipped' WHERE order_id = %s", (oid,))
        cur.execute("DELETE FROM orders WHERE order_id = %s", (oid,))

    want = {"customers": ("customer_id", cid, ["c"]), "products": ("product_id", pid, ["c"]),
            "inventory": ("inventory_id", iid, ["c"]), "orders": ("order_id", oid, ["c", "u", "d"])}
    for table, (key, ident, ops) in want.items():
        def ours_json(doc, key=key, ident=ident):
            row = doc and (doc["payload"]["after"] or doc["payload"]["before"])
            return row is not None and row.get(key) == ident

        js = consume_until(topic_for(table), lambda got, f=ours_json, n=len(ops): sum(map(f, got)) >= n,
                           envelope=True)
        js = [d for d in js if ours_json(d)]
        assert [d["payload"]["op"] for d in js] == ops, f"{table} (json): {js}"

        raw = consume_raw(f"{AVRO_PREFIX}.public.{table}",
                          lambda got, n=len(ops) + (1 if "d" in ops else 0):
                          sum(1 for kv in got if kv[0] and decode_confluent(kv[0])[1].get(key) == ident) >= n)
        mine = [kv for kv in raw if kv[0] and decode_confluent(kv[0])[1].get(key) == ident]
        values = [kv[1] for kv in mine]
        # create/update/delete, and after a delete the tombstone (null value), as on the JSON topic.
        assert len(values) == len(ops) + (1 if "d" in ops else 0), f"{table} (avro): {len(values)} messages"
        if "d" in ops:
            assert values[-1] is None, f"{table}: no tombstone after the delete"
        decoded = [decode_confluent(v)[1] for v in values if v is not None]
        assert [d["op"] for d in decoded] == ops
        fields = js[0]["schema"]["fields"][1]["fields"]  # the "after" struct of the JSON envelope
        for a, j in zip(decoded, js):
            for side in ("before", "after"):
                jr = j["payload"][side]
                assert (a[side] is None) == (jr is None), (table, side)
                if jr is not None:
                    assert a[side] == json_row(jr, fields), (table, side)
            assert a["source"]["table"] == table and a["source"]["name"] == AVRO_PREFIX
            assert a["source"]["lsn"] == j["payload"]["source"]["lsn"]  # the same change, from the same WAL
            assert a["source"]["version"].startswith("3.")

    # The registry holds a key and a value schema for every Avro topic.
    code, subjects = registry("GET", "/apis/ccompat/v7/subjects")
    assert code == 200
    for table in want:
        for side in ("key", "value"):
            assert f"{AVRO_PREFIX}.public.{table}-{side}" in subjects, subjects


def test_avro_framing_is_confluent_with_the_registry_id(avro_connector):
    raw = consume_raw(f"{AVRO_PREFIX}.public.customers", lambda got: len(got) >= 1)
    assert raw, "no message on avro.public.customers"
    key, value = raw[0]
    for b in (key, value):
        assert b[0] == 0
        sid = struct.unpack(">I", b[1:5])[0]
        code, body = registry("GET", f"/apis/ccompat/v7/schemas/ids/{sid}")
        assert code == 200, (sid, code, body)
    # The key schema is the primary key alone.
    assert set(decode_confluent(key)[1]) == {"customer_id"}
    code, cfg = http_json("GET", f"/connectors/{AVRO_CONNECTOR}/config")
    assert code == 200
    assert cfg["value.converter"] == "io.apicurio.registry.utils.converter.AvroConverter"
    assert cfg["value.converter.apicurio.registry.as-confluent"] == "true"
    assert cfg["value.converter.apicurio.registry.headers.enabled"] == "false"
