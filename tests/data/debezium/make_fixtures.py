#!/usr/bin/env python3
"""make_fixtures.py - writes the Debezium 2.7 (PostgreSQL connector, Kafka
Connect JsonConverter) fixture events of this folder.

Shapes follow Debezium's PostgreSQL connector documentation: the
{"schema","payload"} envelope, the io.debezium.connector.postgresql.Source
block, Decimal as base64 two's complement with scale/precision parameters,
MicroTimestamp micros, ZonedTimestamp ISO text, the unavailable-TOAST
placeholder.  Compact separators, as JsonConverter writes them.

The real_*.json files are not generated: they are messages captured with
kcat from the project's stack (PostgreSQL 15, Debezium 2.7.4.Final,
JsonConverter with schemas on both key and value).  Run it from
anywhere; it rewrites the files next to itself.  Expected values live in
tests/unit/test_debezium.c."""
import base64, json, os

HERE = os.path.dirname(os.path.abspath(__file__))


def dec_b64(unscaled):
    """Java BigInteger.toByteArray(): minimal big-endian two's complement."""
    n = 1
    while not (-(1 << (8 * n - 1)) <= unscaled < (1 << (8 * n - 1))):
        n += 1
    return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()


def f(typ, name, optional=True, **kw):
    d = {"type": typ, "optional": optional}
    if "sname" in kw:
        d["name"] = kw["sname"]
        d["version"] = 1
    if "params" in kw:
        d["parameters"] = kw["params"]
    if "default" in kw:
        d["default"] = kw["default"]
    d["field"] = name
    return d


CUSTOMER_FIELDS = [
    f("int32", "customer_id", False, default=0),
    f("string", "email"), f("string", "first_name"), f("string", "last_name"),
    f("string", "phone"), f("string", "address_line1"), f("string", "city"),
    f("string", "state"), f("string", "postal_code"), f("string", "country"),
    f("int64", "registration_date", sname="io.debezium.time.MicroTimestamp"),
    f("int64", "last_updated", sname="io.debezium.time.MicroTimestamp"),
    f("boolean", "is_active"), f("string", "customer_tier"),
    f("bytes", "lifetime_value", sname="org.apache.kafka.connect.data.Decimal",
      params={"scale": "2", "connect.decimal.precision": "10"}),
]

SOURCE_SCHEMA = {"type": "struct", "fields": [
    f("string", "version", False), f("string", "connector", False), f("string", "name", False),
    f("int64", "ts_ms", False),
    {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
     "parameters": {"allowed": "true,last,false,incremental"},
     "default": "false", "field": "snapshot"},
    f("string", "db", False), f("string", "sequence"), f("int64", "ts_us"), f("int64", "ts_ns"),
    f("string", "schema", False), f("string", "table", False), f("int64", "txId"),
    f("int64", "lsn"), f("int64", "xmin")],
    "optional": False, "name": "io.debezium.connector.postgresql.Source", "field": "source"}

TX_SCHEMA = {"type": "struct", "fields": [
    f("string", "id", False), f("int64", "total_order", False),
    f("int64", "data_collection_order", False)],
    "optional": True, "name": "event.block", "version": 1, "field": "transaction"}


def envelope_schema(table, fields):
    row = lambda which: {"type": "struct", "fields": fields, "optional": True,
                         "name": "postgres.public.%s.Value" % table, "field": which}
    return {"type": "struct", "fields": [row("before"), row("after"), SOURCE_SCHEMA, TX_SCHEMA,
                                         f("string", "op", False), f("int64", "ts_ms"),
                                         f("int64", "ts_us"), f("int64", "ts_ns")],
            "optional": False, "name": "postgres.public.%s.Envelope" % table, "version": 2}


def source(table="customers", snapshot="false", lsn=24023184, txid=745, ts_ms=1732440000000):
    return {"version": "2.7.4.Final", "connector": "postgresql", "name": "postgres",
            "ts_ms": ts_ms, "snapshot": snapshot, "db": "cdcdb",
            "sequence": "[\"24023128\",\"%d\"]" % lsn, "ts_us": ts_ms * 1000,
            "ts_ns": ts_ms * 1000000, "schema": "public", "table": table, "txId": txid,
            "lsn": lsn, "xmin": None}


def payload(op, before, after, src, ts_ms=1732440000123):
    return {"before": before, "after": after, "source": src, "transaction": None, "op": op,
            "ts_ms": ts_ms, "ts_us": ts_ms * 1000, "ts_ns": ts_ms * 1000000}


def customer(cid=1, email="john@example.com", first="John", last="Doe", city="Austin",
             state="TX", country="USA", ltv=123456, active=True, tier="gold"):
    return {"customer_id": cid, "email": email, "first_name": first, "last_name": last,
            "phone": "+1-555-0100", "address_line1": "1 Main St", "city": city, "state": state,
            "postal_code": "78701", "country": country,
            "registration_date": 1704103200123456,   # 2024-01-01 10:00:00.123456
            "last_updated": 1732439999000000, "is_active": active, "customer_tier": tier,
            "lifetime_value": None if ltv is None else dec_b64(ltv)}


def dump(obj, ascii=False):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii).encode()


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as fh:
        fh.write(data)


CUST_SCHEMA = envelope_schema("customers", CUSTOMER_FIELDS)
KEY_ENV = lambda cid: dump({"schema": {"type": "struct", "fields": [f("int32", "customer_id", False, default=0)],
                                       "optional": False, "name": "postgres.public.customers.Key"},
                            "payload": {"customer_id": cid}})
KEY_BARE = lambda cid: dump({"customer_id": cid})


def env(p, schema=CUST_SCHEMA):
    return dump({"schema": schema, "payload": p})


def main():
    # --- customers, every op, with and without the envelope ---------------
    write("customers_create_env.json", env(payload("c", None, customer(), source())))
    write("customers_create_env.key.json", KEY_ENV(1))
    write("customers_create_bare.json", dump(payload("c", None, customer(), source())))
    write("customers_create_bare.key.json", KEY_BARE(1))
    write("customers_snapshot_bare.json",
          dump(payload("r", None, customer(cid=2, first=None, last="Smith", state=None, ltv=-50),
                       source(snapshot="last", lsn=24000000, txid=700))))
    # REPLICA IDENTITY DEFAULT: update without before; delete with key-only before.
    write("customers_update_default_env.json",
          env(payload("u", None, customer(tier="platinum", ltv=99999999), source(lsn=24023300))))
    before_key_only = {k: None for k in customer()}
    before_key_only["customer_id"] = 1
    write("customers_delete_default_env.json",
          env(payload("d", before_key_only, None, source(lsn=24023400))))
    # REPLICA IDENTITY FULL: before images complete.
    write("customers_update_full_bare.json",
          dump(payload("u", customer(), customer(email="jd@example.com"), source(lsn=24023500))))
    write("customers_delete_full_bare.json",
          dump(payload("d", customer(), None, source(lsn=24023600))))
    write("customers_truncate_env.json", env(payload("t", None, None, source(lsn=24023700))))
    # Unchanged TOASTed column.
    toast = customer()
    toast["address_line1"] = "__debezium_unavailable_value"
    toast["first_name"] = "__debezium_unavailable_value"
    write("customers_toast_bare.json", dump(payload("u", None, toast, source(lsn=24023800))))
    # Field order must not matter; \u escapes incl. a surrogate pair.
    c = customer(first="Zoë😀", last="O\"Brien\\")
    shuffled = dict(reversed(list(c.items())))
    p = payload("c", None, shuffled, source())
    write("customers_reordered_bare.json",
          dump({"op": p["op"], "source": dict(reversed(list(p["source"].items()))),
                "ts_ms": p["ts_ms"], "after": p["after"], "before": None}, ascii=True))
    # payload before schema in the envelope.
    write("customers_payload_first_env.json",
          dump({"payload": payload("c", None, customer(cid=3), source()), "schema": CUST_SCHEMA}))
    # Schema evolution: a column added.
    v2 = CUSTOMER_FIELDS + [f("int32", "loyalty_points")]
    c2 = customer(cid=4)
    c2["loyalty_points"] = 42
    write("customers_v2_env.json", env(payload("c", None, c2, source()), envelope_schema("customers", v2)))
    # decimal.handling.mode=double and =string, envelope-less.
    c = customer(cid=5)
    c["lifetime_value"] = 1234.5
    write("customers_ltv_double_bare.json", dump(payload("c", None, c, source())))
    c = customer(cid=6)
    c["lifetime_value"] = "99.90"
    write("customers_ltv_string_bare.json", dump(payload("c", None, c, source())))
    write("tombstone_null.json", b"null")
    write("heartbeat_env.json", dump({"schema": {"type": "struct", "fields": [f("int64", "ts_ms", False)],
                                                 "optional": False, "name": "io.debezium.connector.common.Heartbeat"},
                                      "payload": {"ts_ms": 1732440000000}}))
    write("tombstone_env.json", b'{"schema":null,"payload":null}')

    # --- every encoding, with the envelope --------------------------------
    types = [
        f("int32", "id", False, default=0),
        f("int16", "i16"), f("int64", "i64"), f("float32", "f32"),
        f("float64", "f64"), f("boolean", "b"), f("string", "s"), f("bytes", "raw"),
        f("bytes", "dec_small", sname="org.apache.kafka.connect.data.Decimal",
          params={"scale": "2", "connect.decimal.precision": "10"}),
        f("bytes", "dec_wide", sname="org.apache.kafka.connect.data.Decimal",
          params={"scale": "4", "connect.decimal.precision": "30"}),
        f("bytes", "dec_nolimit", sname="org.apache.kafka.connect.data.Decimal",
          params={"scale": "3"}),
        {"type": "struct", "fields": [f("int32", "scale", False), f("bytes", "value", False)],
         "optional": True, "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
         "doc": "Variable scaled decimal", "field": "dec_var"},
        f("float64", "dec_double"), f("string", "dec_string"),
        f("int32", "d", sname="io.debezium.time.Date"),
        f("int32", "t_ms", sname="io.debezium.time.Time"),
        f("int64", "t_us", sname="io.debezium.time.MicroTime"),
        f("int64", "t_ns", sname="io.debezium.time.NanoTime"),
        f("int64", "ts_ms", sname="io.debezium.time.Timestamp"),
        f("int64", "ts_us", sname="io.debezium.time.MicroTimestamp"),
        f("int64", "ts_ns", sname="io.debezium.time.NanoTimestamp"),
        f("string", "tsz", sname="io.debezium.time.ZonedTimestamp"),
        f("int64", "kts", sname="org.apache.kafka.connect.data.Timestamp"),
        f("int32", "kdate", sname="org.apache.kafka.connect.data.Date"),
        f("string", "js", sname="io.debezium.data.Json"),
        f("string", "u", sname="io.debezium.data.Uuid"),
        {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
         "parameters": {"allowed": "red,green"}, "field": "e"},
        {"type": "array", "items": {"type": "int32", "optional": True}, "optional": True, "field": "arr"},
        f("bytes", "toasted"),
        {"type": "array", "items": {"type": "string", "optional": True}, "optional": True, "field": "arr_toasted"},
    ]
    row = {"id": 7, "i16": -32768, "i64": 9007199254740993, "f32": 1.5, "f64": -2.25e-3,
           "b": False, "s": "tab\there", "raw": base64.b64encode(b"\x00\x01\xfe\xff").decode(),
           "dec_small": dec_b64(-12345),                     # -123.45
           "dec_wide": dec_b64(123456789012345678901234567),  # 12345678901234567890123.4567
           "dec_nolimit": dec_b64(-1005),                    # -1.005
           "dec_var": {"scale": 3, "value": dec_b64(31415)},  # 31.415
           "dec_double": 0.1, "dec_string": "-0.50",
           "d": 19723,                                       # 2024-01-01
           "t_ms": 3723004, "t_us": 3723004005, "t_ns": 3723004005006,
           "ts_ms": 1704103200123, "ts_us": 1704103200123456, "ts_ns": -1500,
           "tsz": "2024-01-01T12:00:00.5+02:00", "kts": 1704103200000, "kdate": 19723,
           "js": "{\"a\": [1, 2]}", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "e": "green",
           "arr": [1, None, 3],
           "toasted": base64.b64encode(b"__debezium_unavailable_value").decode(),
           "arr_toasted": ["__debezium_unavailable_value"]}
    write("types_env.json", env(payload("c", None, row, source(table="all_types")),
                                envelope_schema("all_types", types)))

    # --- bad events --------------------------------------------------------
    good = dump(payload("c", None, customer(), source()))
    write("bad_malformed.json", b'{"op":"c",,"after":{}}')
    write("bad_truncated.json", good[: len(good) // 2])
    c = customer()
    c["customer_id"] = "abc"
    write("bad_wrong_type.json", dump(payload("c", None, c, source())))
    c = customer()
    c["customer_id"] = 4294967296
    write("bad_int32_overflow.json", dump(payload("c", None, c, source())))
    write("bad_unknown_op.json", dump(payload("x", None, customer(), source())))
    write("bad_missing_payload.json", dump({"schema": CUST_SCHEMA}))
    write("bad_missing_op.json", dump({"before": None, "after": customer(), "source": source()}))
    write("bad_invalid_utf8.json", good.replace(b"John", b"Jo\xc3\x28n"))
    write("bad_lone_surrogate.json", good.replace(b"John", b"Jo\\ud800hn"))
    write("bad_deep_nesting.json", good[:-1] + b',"transaction":' + b"[" * 200 + b"]" * 200 + b"}")
    write("bad_trailing.json", good + b" x")
    write("bad_create_without_after.json", dump(payload("c", None, None, source())))
    c = customer()
    c["shoe_size"] = 44
    write("bad_unknown_column_bare.json", dump(payload("c", None, c, source())))
    write("bad_unknown_table_bare.json", dump(payload("c", None, {"id": 1}, source(table="mystery"))))
    write("bad_not_object.json", b'[1,2,3]')


if __name__ == "__main__":
    main()
