#!/usr/bin/env python3
"""capture_dbz3.py - take real Debezium 3 events off a running stack as test fixtures.

    .venv/bin/python tests/data/capture_dbz3.py [--bootstrap 127.0.0.1:9092] [--registry http://127.0.0.1:8085]

JSON (JsonConverter with schemas, topics postgres.public.*): the first create, update and delete of
customers and orders, key and value as Kafka carried them, into tests/data/debezium/dbz3_<table>_<op>.json
(+ .key.json); a later create of customers with NULL columns as dbz3_customers_create_nulls.json.

Avro (Apicurio's AvroConverter, topics avro.public.* with the Confluent framing: magic 0 + 4-byte
content id; avro8.public.* with Apicurio's own: magic 0 + 8-byte global id): every message of the four
tables, key and value as raw bytes, into tests/data/avro/real/<topic>.<offset>.<op>.{key,value}.bin, each
writer schema as the registry serves it into tests/data/avro/real/schemas/ (ccompat-<id>.avsc for
content ids from /apis/ccompat/v7/schemas/ids/<id>, global-<id>.avsc for global ids from
/apis/registry/v2/ids/globalIds/<id>), and manifest.json: per file its topic, offset, framing, schema id,
schema file and the datum as fastavro decodes it with that schema (the reference for cdcflow's decoder).
A tombstone (after a delete) has a key file and no value file.

The stack must have the connectors registered (cdcflow connector register; cdcflow connector register
--format avro; and for avro8: --format avro --avro-framing apicurio --name postgres-avro8-connector
--topic-prefix avro8 --slot avro8_debezium_slot) and the changes made; see docs/debezium3.md.
"""

import argparse
import base64
import decimal
import io
import json
import os
import struct
import urllib.request

from confluent_kafka import Consumer, TopicPartition

HERE = os.path.dirname(os.path.abspath(__file__))
TABLES = ("customers", "orders", "products", "inventory")
OPS = {"c": "create", "u": "update", "d": "delete", "r": "read"}


def read_topic(bootstrap, topic, timeout=10.0):
    """Every message of partition 0 of `topic`, oldest first: [(offset, key bytes, value bytes or None)]."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cdcflow-capture", "enable.auto.commit": False})
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
        c.assign([TopicPartition(topic, 0, lo)])
        out = []
        while len(out) < hi - lo:
            m = c.poll(timeout)
            if m is None:
                raise SystemExit(f"{topic}: timed out after {len(out)} of {hi - lo} messages")
            if m.error():
                raise SystemExit(f"{topic}: {m.error()}")
            out.append((m.offset(), m.key(), m.value()))
        return out
    finally:
        c.close()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def capture_json(bootstrap, outdir):
    written = []
    for table in ("customers", "orders"):
        seen = set()
        creates = 0
        for off, key, value in read_topic(bootstrap, f"postgres.public.{table}"):
            if value is None:
                continue
            op = json.loads(value)["payload"]["op"]
            name = OPS[op]
            if op == "c":
                creates += 1
                if creates == 2 and table == "customers":
                    name = "create_nulls"
                elif creates > 1:
                    continue
            elif op in seen:
                continue
            seen.add(op)
            base = os.path.join(outdir, f"dbz3_{table}_{name}")
            write(base + ".json", value)
            write(base + ".key.json", key)
            written.append(os.path.basename(base) + ".json")
    return written


def split_frame(raw):
    """(framing, id, body) of a registry-framed Avro message: 0 + 4-byte id (confluent) or 0 + 8-byte id
    (apicurio); which one is known from the topic, so this only checks the magic byte."""
    if not raw or raw[0] != 0:
        raise ValueError(f"magic byte is {raw[:1]!r}, want 0")
    return raw


def jsonable(v):
    if isinstance(v, bytes):
        return {"bytes_b64": base64.b64encode(v).decode()}
    if isinstance(v, decimal.Decimal):
        return {"decimal": str(v)}
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "isoformat"):
        return {"iso": v.isoformat()}
    return v


def capture_avro(bootstrap, registry, outdir):
    import fastavro

    schemas = {}
    manifest = []
    for prefix, framing in (("avro", "confluent"), ("avro8", "apicurio")):
        for table in TABLES:
            topic = f"{prefix}.public.{table}"
            for off, key, value in read_topic(bootstrap, topic):
                op = "tombstone"
                entries = []
                for side, raw in (("value", value), ("key", key)):
                    if raw is None:
                        continue
                    split_frame(raw)
                    if framing == "confluent":
                        sid, body = struct.unpack(">I", raw[1:5])[0], raw[5:]
                        sfile = f"ccompat-{sid}.avsc"
                        url = f"{registry}/apis/ccompat/v7/schemas/ids/{sid}"
                        text = lambda b: json.loads(b)["schema"]  # noqa: E731
                    else:
                        sid, body = struct.unpack(">Q", raw[1:9])[0], raw[9:]
                        sfile = f"global-{sid}.avsc"
                        url = f"{registry}/apis/registry/v2/ids/globalIds/{sid}"
                        text = lambda b: b.decode()  # noqa: E731
                    if sfile not in schemas:
                        schemas[sfile] = text(get(url))
                        write(os.path.join(outdir, "schemas", sfile), schemas[sfile].encode())
                    parsed = fastavro.parse_schema(json.loads(schemas[sfile]))
                    bio = io.BytesIO(body)
                    datum = fastavro.schemaless_reader(bio, parsed)
                    if bio.tell() != len(body):
                        raise SystemExit(f"{topic}@{off} {side}: {len(body) - bio.tell()} bytes left after the datum")
                    if side == "value":
                        op = OPS.get(datum.get("op"), datum.get("op"))
                    entries.append((side, raw, sid, sfile, datum))
                for side, raw, sid, sfile, datum in entries:
                    fname = f"{topic}.{off}.{op}.{side}.bin"
                    write(os.path.join(outdir, fname), raw)
                    manifest.append({"file": fname, "topic": topic, "offset": off, "side": side, "op": op,
                                     "framing": framing, "schema_id": sid, "schema": "schemas/" + sfile,
                                     "datum": jsonable(datum)})
    write(os.path.join(outdir, "manifest.json"), (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest, schemas


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--registry", default="http://127.0.0.1:8085")
    ap.add_argument("--json-out", default=os.path.join(HERE, "debezium"))
    ap.add_argument("--avro-out", default=os.path.join(HERE, "avro", "real"))
    a = ap.parse_args()
    written = capture_json(a.bootstrap, a.json_out)
    print(f"json: {len(written)} events: {' '.join(written)}")
    manifest, schemas = capture_avro(a.bootstrap, a.registry.rstrip("/"), a.avro_out)
    print(f"avro: {len(manifest)} messages, {len(schemas)} schemas into {a.avro_out}")


if __name__ == "__main__":
    main()
