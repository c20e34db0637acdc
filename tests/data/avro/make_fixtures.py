#!/usr/bin/env python3
"""make_fixtures.py - Avro fixtures of Debezium change events, as Kafka
Connect's AvroConverter writes them behind a schema registry.

Each event exists twice: as JsonConverter writes it (with the schema
envelope) and as the AvroConverter writes it (Confluent framing: magic byte
0, 4-byte schema id, the Avro binary datum).  The Avro schema is derived
from the Connect schema of the JSON envelope by the rules of Connect's
AvroData (struct -> record named by the Connect name, optional -> a union
with null, int8/int16 -> int with "connect.type", semantic names as
"connect.name", parameters as "connect.parameters", Decimal with
logicalType decimal), so the unit tests can check that both paths decode to
the same events.  The customers events are the real ones the stack's
Debezium 2.7 wrote (tests/data/debezium/real_customers_*.json); orders and
the all-types table follow scripts/stack.sh's PostgreSQL tables.

Run with the project venv (fastavro, pinned in tests/requirements.txt):
    .venv/bin/python tests/data/avro/make_fixtures.py
Writes, beside this file: <id>.avsc (the registry's schemas by id),
<event>.json / <event>.key.json (JsonConverter) and <event>.avro /
<event>.key.avro (AvroConverter, Confluent framing), and the fuzz seeds in
tests/data/fuzz/avro_datum/ (these messages) and tests/data/fuzz/avro/
(manifest-shaped container files for fuzz_avro)."""
import base64
import copy
import io
import json
import os
import struct

import fastavro

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
REAL = os.path.join(ROOT, "tests", "data", "debezium")
FUZZ = os.path.join(ROOT, "tests", "data", "fuzz", "avro_datum")
FUZZ_OCF = os.path.join(ROOT, "tests", "data", "fuzz", "avro")

# ---- Connect schema -> Avro schema (AvroData's rules) ----------------------

PRIM = {"int32": "int", "int64": "long", "float32": "float", "float": "float",
        "float64": "double", "double": "double", "boolean": "boolean",
        "string": "string", "bytes": "bytes"}


def avro_type(cs, seen):
    t = cs["type"]
    name = cs.get("name")
    if t == "struct":
        full = name or "ConnectDefault"
        if full in seen:
            return full.rsplit(".", 1)[-1] if "." not in full else full
        seen.add(full)
        ns, _, short = full.rpartition(".")
        rec = {"type": "record", "name": short, "fields": []}
        if ns:
            rec["namespace"] = ns
        for f in cs["fields"]:
            rec["fields"].append(avro_field(f, seen))
        if cs.get("version") is not None:
            rec["connect.version"] = cs["version"]
        rec["connect.name"] = full
        return rec
    if t == "array":
        return {"type": "array", "items": avro_optional(cs["items"], seen)}
    if t == "map":
        return {"type": "map", "values": avro_optional(cs["values"], seen)}
    if t in ("int8", "int16"):
        a = {"type": "int", "connect.type": t}
    else:
        a = {"type": PRIM[t]}
    if cs.get("version") is not None:
        a["connect.version"] = cs["version"]
    if cs.get("parameters"):
        a["connect.parameters"] = dict(cs["parameters"])
    if cs.get("default") is not None and cs.get("optional", True):
        a["connect.default"] = cs["default"]
    if name:
        a["connect.name"] = name
        if name == "org.apache.kafka.connect.data.Decimal":
            a["logicalType"] = "decimal"
            a["precision"] = int(cs["parameters"].get("connect.decimal.precision", 64))
            a["scale"] = int(cs["parameters"]["scale"])
        elif name == "org.apache.kafka.connect.data.Date":
            a["logicalType"] = "date"
    if len(a) == 1:
        return a["type"]
    return a


def avro_optional(cs, seen):
    a = avro_type(cs, seen)
    return ["null", a] if cs.get("optional", True) else a


def avro_field(f, seen):
    a = avro_type(f, seen)
    out = {"name": f["field"]}
    if f.get("optional", True):
        if f.get("default") is not None:
            out["type"] = [a, "null"]          # the default's type comes first
            out["default"] = f["default"]
        else:
            out["type"] = ["null", a]
            out["default"] = None
    else:
        out["type"] = a
        if f.get("default") is not None:
            out["default"] = f["default"]
    return out


def to_avro_schema(connect_schema):
    return avro_type(connect_schema, set())


# ---- JSON payload -> Avro datum values ------------------------------------

def to_datum(cs, v):
    if v is None:
        return None
    t = cs["type"]
    if t == "struct":
        return {f["field"]: to_datum(f, v.get(f["field"])) for f in cs["fields"]}
    if t == "array":
        return [to_datum(cs["items"], x) for x in v]
    if t == "map":
        return {k: to_datum(cs["values"], x) for k, x in v.items()}
    if t == "bytes":
        return base64.b64decode(v)
    if t in ("float32", "float64", "float", "double"):
        return float(v)
    return v


def datum_bytes(avsc, value):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(copy.deepcopy(avsc)), value)
    return buf.getvalue()


def frame(schema_id, datum):
    return b"\x00" + struct.pack(">I", schema_id) + datum


# ---- Connect schemas of the stack's tables ---------------------------------

def fld(field, type_, optional=True, **kw):
    d = {"type": type_, "optional": optional, "field": field}
    d.update(kw)
    return d


def source_schema():
    env = json.load(open(os.path.join(REAL, "real_customers_create.json")))["schema"]
    return next(f for f in env["fields"] if f["field"] == "source")


def envelope(table, cols):
    row = {"type": "struct", "fields": cols, "optional": True,
           "name": "postgres.public.%s.Value" % table}
    env = {"type": "struct", "fields": [
        dict(row, field="before"), dict(row, field="after"), source_schema(),
        {"type": "struct", "fields": [fld("id", "string", False), fld("total_order", "int64", False),
                                      fld("data_collection_order", "int64", False)],
         "optional": True, "name": "event.block", "version": 1, "field": "transaction"},
        fld("op", "string", False), fld("ts_ms", "int64"), fld("ts_us", "int64"), fld("ts_ns", "int64")],
        "optional": False, "name": "postgres.public.%s.Envelope" % table, "version": 2}
    return env


def key_schema(table, cols):
    return {"type": "struct", "fields": cols, "optional": False,
            "name": "postgres.public.%s.Key" % table}


def dec(field, prec, scale, optional=True):
    return fld(field, "bytes", optional, name="org.apache.kafka.connect.data.Decimal", version=1,
               parameters={"scale": str(scale), "connect.decimal.precision": str(prec)})


def ts_us(field, optional=True):
    return fld(field, "int64", optional, name="io.debezium.time.MicroTimestamp", version=1)


ORDERS = [
    fld("order_id", "int32", False, default=0), fld("customer_id", "int32", False),
    ts_us("order_date", False), fld("status", "string", False), fld("item_count", "int32", False),
    dec("total_amount", 12, 2, False), fld("currency", "string", False),
    fld("is_gift", "boolean", False), fld("shipping_city", "string"), fld("shipping_country", "string"),
    fld("notes", "string"),
    fld("shipped_at", "string", name="io.debezium.time.ZonedTimestamp", version=1),
    ts_us("last_updated", False),
]

TYPES = [
    fld("id", "int32", False, default=0), fld("small", "int16"), fld("big", "int64"),
    fld("ratio", "float64"), fld("score", "float32"), fld("flag", "boolean"),
    fld("price", "struct", name="io.debezium.data.VariableScaleDecimal", version=1,
        fields=[fld("scale", "int32", False), fld("value", "bytes", False)],
        doc="Variable scaled decimal"),
    dec("wide", 30, 4), fld("born", "int32", name="io.debezium.time.Date", version=1),
    fld("at_ms", "int64", name="io.debezium.time.Timestamp", version=1),
    fld("at_ns", "int64", name="io.debezium.time.NanoTimestamp", version=1),
    fld("alarm", "int64", name="io.debezium.time.MicroTime", version=1),
    fld("alarm_ms", "int32", name="io.debezium.time.Time", version=1),
    fld("alarm_ns", "int64", name="io.debezium.time.NanoTime", version=1),
    fld("wake", "string", name="io.debezium.time.ZonedTime", version=1),
    fld("doc", "string", name="io.debezium.data.Json", version=1),
    fld("uid", "string", name="io.debezium.data.Uuid", version=1),
    fld("mood", "string", name="io.debezium.data.Enum", version=1,
        parameters={"allowed": "happy,sad"}),
    fld("blob", "bytes"), fld("tags", "array", items={"type": "string", "optional": True}),
    fld("spot", "struct", name="io.debezium.data.geometry.Point", version=1,
        fields=[fld("x", "float64", False), fld("y", "float64", False), fld("wkb", "bytes"),
                fld("srid", "int32")]),
    fld("body", "string"),
]

PLACEHOLDER = "__debezium_unavailable_value"


def source(table, ts, lsn, txid, snapshot="false"):
    return {"version": "2.7.4.Final", "connector": "postgresql", "name": "postgres", "ts_ms": ts,
            "snapshot": snapshot, "db": "cdcdb", "sequence": "[null,\"%d\"]" % lsn,
            "ts_us": ts * 1000, "ts_ns": ts * 1000000, "schema": "public", "table": table,
            "txId": txid, "lsn": lsn, "xmin": None}


def payload(table, op, before, after, ts, lsn, txid):
    return {"before": before, "after": after, "source": source(table, ts - 300, lsn, txid),
            "transaction": None, "op": op, "ts_ms": ts, "ts_us": ts * 1000, "ts_ns": ts * 1000000}


def b64dec(unscaled, nbytes):
    return base64.b64encode(unscaled.to_bytes(nbytes, "big", signed=True)).decode()


def orders_events():
    row = {"order_id": 7, "customer_id": 1, "order_date": 1795519890177632, "status": "pending",
           "item_count": 2, "total_amount": b64dec(12345, 3), "currency": "EUR", "is_gift": False,
           "shipping_city": "Lyon", "shipping_country": "FR", "notes": "ring twice \"loud\"\n",
           "shipped_at": None, "last_updated": 1795519890177632}
    upd = dict(row, status="shipped", shipped_at="2026-11-21T10:11:12.345678Z",
               last_updated=1795519990177632)
    return {
        "orders_create": payload("orders", "c", None, row, 1795519890483, 26507000, 800),
        "orders_update": payload("orders", "u", row, upd, 1795519990483, 26507100, 801),
        "orders_delete": payload("orders", "d", upd, None, 1795520090483, 26507200, 802),
    }


def types_events():
    row = {"id": 1, "small": -300, "big": -9007199254740993, "ratio": 0.1, "score": 1.5,
           "flag": True, "price": {"scale": 3, "value": b64dec(31415, 2)},
           "wide": b64dec(-123456789012345678901234567, 12), "born": -719162,
           "at_ms": 1700000000123, "at_ns": -1500, "alarm": 45296789012, "alarm_ms": 45296789,
           "alarm_ns": 45296789012345, "wake": "12:34:56.789Z", "doc": "{\"a\": [1, 2]}",
           "uid": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "mood": "happy",
           "blob": base64.b64encode(b"\x00\xffbin").decode(), "tags": ["a", None, "c\"d"],
           "spot": {"x": 1.0, "y": -2.5, "wkb": base64.b64encode(b"\x01\x01").decode(), "srid": None},
           "body": "x" * 40}
    toast = dict(row, body=PLACEHOLDER, blob=base64.b64encode(PLACEHOLDER.encode()).decode(),
                 tags=[PLACEHOLDER], score=None, price=None)
    return {
        "types_create": payload("types", "c", None, row, 1795519890483, 26508000, 900),
        "types_toast": payload("types", "u", None, toast, 1795519890583, 26508100, 901),
    }


def write(name, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(os.path.join(HERE, name), mode) as f:
        f.write(data)


def emit(name, conn_env, conn_key, pay, key, vid, kid, out_json=True):
    if out_json:
        write(name + ".json", json.dumps({"schema": conn_env, "payload": pay}, separators=(",", ":")))
        write(name + ".key.json", json.dumps({"schema": conn_key, "payload": key}, separators=(",", ":")))
    venv = to_avro_schema(conn_env)
    vkey = to_avro_schema(conn_key)
    value = frame(vid, datum_bytes(venv, to_datum(conn_env, pay)))
    write(name + ".avro", value)
    write(name + ".key.avro", frame(kid, datum_bytes(vkey, to_datum(conn_key, key))))
    os.makedirs(FUZZ, exist_ok=True)
    with open(os.path.join(FUZZ, name), "wb") as f:
        f.write(value)


MANIFEST_ENTRY = {
    "type": "record", "name": "manifest_entry", "fields": [
        {"name": "status", "type": "int", "field-id": 0},
        {"name": "snapshot_id", "type": ["null", "long"], "default": None, "field-id": 1},
        {"name": "data_file", "field-id": 2, "type": {
            "type": "record", "name": "r2", "fields": [
                {"name": "content", "type": "int", "field-id": 134},
                {"name": "file_path", "type": "string", "field-id": 100},
                {"name": "file_format", "type": "string", "field-id": 101},
                {"name": "record_count", "type": "long", "field-id": 103},
                {"name": "column_sizes", "type": ["null", {"type": "array", "items": {
                    "type": "record", "name": "k117_v118", "fields": [
                        {"name": "key", "type": "int", "field-id": 117},
                        {"name": "value", "type": "long", "field-id": 118}]}}],
                 "default": None, "field-id": 108},
                {"name": "lower_bounds", "type": ["null", {"type": "map", "values": "bytes"}],
                 "default": None, "field-id": 125},
                {"name": "split_offsets", "type": ["null", {"type": "array", "items": "long"}],
                 "default": None, "field-id": 132},
                {"name": "sort_order_id", "type": ["null", "int"], "default": None, "field-id": 140},
                {"name": "ratio", "type": ["null", "double"], "default": None},
                {"name": "kind", "type": {"type": "enum", "name": "kind", "symbols": ["A", "B"]}},
                {"name": "md5", "type": {"type": "fixed", "name": "md5", "size": 4}},
            ]}},
    ]}


def ocf_seeds():
    """Seeds for fuzz_avro (the container reader): manifest-shaped files."""
    rows = [{"status": i % 3, "snapshot_id": None if i % 2 else 1234567890123 + i,
             "data_file": {"content": 0, "file_path": "s3://b/t/data/%05d.parquet" % i,
                           "file_format": "PARQUET", "record_count": 1000 * i,
                           "column_sizes": [{"key": 1, "value": 77}] if i else None,
                           "lower_bounds": {"1": b"\x01\x00"} if i % 2 else None,
                           "split_offsets": [4, 1 << 40], "sort_order_id": i, "ratio": 0.5 * i,
                           "kind": "AB"[i % 2], "md5": b"\x00\x01\x02\x03"}}
            for i in range(5)]
    os.makedirs(FUZZ_OCF, exist_ok=True)
    for codec in ("null", "deflate"):
        for n, block in ((5, 100), (5, 2), (0, 100)):
            buf = io.BytesIO()
            fastavro.writer(buf, fastavro.parse_schema(copy.deepcopy(MANIFEST_ENTRY)), rows[:n],
                            codec=codec, sync_interval=block,
                            metadata={"format-version": "2", "content": "data"})
            with open(os.path.join(FUZZ_OCF, "manifest_%s_%d_%d.avro" % (codec, n, block)), "wb") as f:
                f.write(buf.getvalue())


def main():
    ocf_seeds()
    schemas = {}
    # customers: the real events of the stack (ids 1 key, 2 value)
    real = {}
    for ev in ("create", "update", "delete"):
        real[ev] = (json.load(open(os.path.join(REAL, "real_customers_%s.json" % ev))),
                    json.load(open(os.path.join(REAL, "real_customers_%s.key.json" % ev))))
    cenv, ckey = real["create"][0]["schema"], real["create"][1]["schema"]
    schemas[1], schemas[2] = to_avro_schema(ckey), to_avro_schema(cenv)
    for ev, (v, k) in real.items():
        emit("customers_" + ev, v["schema"], k["schema"], v["payload"], k["payload"], 2, 1, out_json=False)
    # customers v2: a column added in PostgreSQL -> a new registry version (id 7)
    cenv2 = copy.deepcopy(cenv)
    for f in cenv2["fields"][:2]:
        f["fields"].append(fld("loyalty_points", "int32"))
    schemas[7] = to_avro_schema(cenv2)
    pay2 = copy.deepcopy(real["update"][0]["payload"])
    for img in ("before", "after"):
        pay2[img]["loyalty_points"] = 42
    emit("customers_v2_update", cenv2, ckey, pay2, real["update"][1]["payload"], 7, 1)
    # orders (3 key, 4 value)
    oenv, okey = envelope("orders", ORDERS), key_schema("orders", [fld("order_id", "int32", False, default=0)])
    schemas[3], schemas[4] = to_avro_schema(okey), to_avro_schema(oenv)
    for name, pay in orders_events().items():
        emit(name, oenv, okey, pay, {"order_id": 7}, 4, 3)
    # every logical type (5 key, 6 value)
    tenv, tkey = envelope("types", TYPES), key_schema("types", [fld("id", "int32", False, default=0)])
    schemas[5], schemas[6] = to_avro_schema(tkey), to_avro_schema(tenv)
    for name, pay in types_events().items():
        emit(name, tenv, tkey, pay, {"id": 1}, 6, 5)
    for sid, s in schemas.items():
        write("%d.avsc" % sid, json.dumps(s, separators=(",", ":")))


if __name__ == "__main__":
    main()
