"""cdc_tables.py - what the reader tests share: the Debezium fixtures they build events from, the rows
cdcflow's transforms make of them, and running cdcflow on a file of events.  Needs nothing beyond the
standard library and pytest, so both the integration venv and the newest-readers venv import it."""
import base64
import datetime
import json
import os
import subprocess
import uuid
from decimal import Decimal

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CDCFLOW = os.environ.get("CF_CDCFLOW", os.path.join(ROOT, "build", "cdcflow"))
FIXTURES = os.path.join(ROOT, "tests", "data", "debezium")
CUSTOMERS_TOPIC = "postgres.public.customers"
ORDERS_TOPIC = "postgres.public.orders"
CUSTOMER_COLS = ["customer_id", "email", "full_name", "location", "lifetime_value", "registration_date",
                 "is_active", "_cdc_operation", "_source_lsn"]
ORDER_COLS = ["order_id", "customer_id", "order_date", "status", "item_count", "total_amount", "is_gift",
              "notes", "shipped_at", "_cdc_operation", "_source_lsn"]
EPOCH = datetime.datetime(1970, 1, 1)


def _fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def decimal_b64(unscaled):
    """Debezium's `precise` decimal: big-endian two's complement bytes of the unscaled value, base64."""
    n = unscaled.bit_length() // 8 + 1
    return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()


def customer_row(e):
    """The row cdcflow's customers transform makes of event e (columns CUSTOMER_COLS)."""
    r = e["after"] or e["before"]
    unscaled = int.from_bytes(base64.b64decode(r["lifetime_value"]), "big", signed=True)
    return {
        "customer_id": r["customer_id"],
        "email": r["email"],
        "full_name": f"{r['first_name']} {r['last_name']}",
        "location": f"{r['city']}, {r['state']}, {r['country']}",
        "lifetime_value": unscaled / 100,
        "registration_date": EPOCH + datetime.timedelta(microseconds=r["registration_date"]),
        "is_active": r["is_active"],
        "_cdc_operation": {"c": "INSERT", "u": "UPDATE", "d": "DELETE", "r": "READ"}[e["op"]],
        "_source_lsn": e["source"]["lsn"],
    }


def order_row(e):
    r = e["payload"]["after"]
    unscaled = int.from_bytes(base64.b64decode(r["total_amount"]), "big", signed=True)
    shipped = None
    if r["shipped_at"] is not None:
        shipped = datetime.datetime.strptime(r["shipped_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "order_id": r["order_id"], "customer_id": r["customer_id"],
        "order_date": EPOCH + datetime.timedelta(microseconds=r["order_date"]),
        "status": r["status"], "item_count": r["item_count"],
        "total_amount": Decimal(unscaled).scaleb(-2), "is_gift": r["is_gift"], "notes": r["notes"],
        "shipped_at": shipped, "_cdc_operation": "INSERT", "_source_lsn": e["payload"]["source"]["lsn"],
    }


def mirror(events):
    """key -> row an upsert table holds after `events`: last event per key wins, deletes remove."""
    state = {}
    for e in events:
        row = customer_row(e)
        if e["op"] == "d":
            state.pop(row["customer_id"], None)
        else:
            state[row["customer_id"]] = row
    return state


def write_jsonl(path, events):
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


def run_cdcflow(sink, events_file, workdir, *args):
    if not os.access(CDCFLOW, os.X_OK):
        pytest.fail(f"{CDCFLOW} is not built (make)")
    cmd = [CDCFLOW, sink, "--source", f"file:{events_file}", "--available-now", "--metrics-port", "0",
           "--checkpoint-location", os.path.join(workdir, "ckpt-" + uuid.uuid4().hex[:8]),
           "--trigger-interval", "10ms", "--log-level", "warn", *[str(a) for a in args]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
