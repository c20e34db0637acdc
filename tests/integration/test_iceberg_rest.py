"""test_iceberg_rest.py - `cdcflow iceberg` on S3 through the stack's Iceberg REST catalog, read back with
pyiceberg's RestCatalog (a client we did not write) and with cdcflow's own scan and history.

Debezium events come from a file (--source file:), built from the captured customers fixture: append and
upsert tables equal the rows recomputed from the events; a second run resumes from the offsets the
catalog's table carries (nothing new: no snapshot; new events: only those); broken configurations fail
with one line.  Needs the stack's S3 and catalog (scripts/stack.sh start): fails, not skips, when down.
"""

import json
import os
import subprocess
import uuid

import pytest

from conftest import CDCFLOW, ROOT
from objstore import CATALOG_URI, cdcflow_env, list_keys, rest_catalog

FIXTURE = os.path.join(ROOT, "tests", "data", "debezium", "customers_create_bare.json")
TOPIC = "postgres.public.customers"
NKEYS = 20
LSN0 = 24000000


def event(i):
    """Debezium event i: inserts of NKEYS keys, then updates, every ninth a delete."""
    with open(FIXTURE) as f:
        e = json.load(f)
    key = (i * 7) % NKEYS + 1
    op = "d" if i % 9 == 8 and i >= NKEYS else ("c" if i < NKEYS else "u")
    row = dict(e["after"], customer_id=key, email=f"user{key}@example.com", first_name=f"F{i}",
               last_name=f"L{key}", is_active=i % 2 == 0)
    e.update(op=op, before=row if op == "d" else None, after=None if op == "d" else row)
    e["source"]["lsn"] = LSN0 + i
    return e


def write_events(path, start, stop):
    with open(path, "a") as f:
        for i in range(start, stop):
            f.write(json.dumps(event(i)) + "\n")


OPS = {"c": "INSERT", "u": "UPDATE", "d": "DELETE", "r": "READ"}


def expected_append(n):
    """Every event is a row: (customer_id, full name, operation, LSN)."""
    out = []
    for i in range(n):
        e = event(i)
        r = e["after"] or e["before"]
        out.append((r["customer_id"], f"{r['first_name']} {r['last_name']}", OPS[e["op"]], LSN0 + i))
    return sorted(out)


def expected_upsert(n):
    """The last event of each key, deleted keys gone: (customer_id, full name, email, LSN)."""
    last = {}
    for i in range(n):
        e = event(i)
        r = e["after"] or e["before"]
        last[r["customer_id"]] = (e["op"], r, LSN0 + i)
    return sorted((k, f"{r['first_name']} {r['last_name']}", r["email"], lsn)
                  for k, (op, r, lsn) in last.items() if op != "d")


@pytest.fixture
def place(tmp_path):
    """(warehouse s3:// URL, namespace, tmp dir) unique to the test; the objects are removed afterwards."""
    from objstore import delete_prefix, require_servers

    require_servers()
    tag = uuid.uuid4().hex[:10]
    prefix = f"it-rest-{tag}"
    yield f"s3://cdcflow/{prefix}/wh", f"ns_{tag}", tmp_path
    delete_prefix(prefix + "/")


def run(events, warehouse, ns, mode, tmp, *extra, catalog=CATALOG_URI, timeout=180):
    cmd = [CDCFLOW, "iceberg", "--source", f"file:{events}", "--available-now", "--warehouse", warehouse,
           "--namespace", ns, "--table", "customers", "--mode", mode, "--metrics-port", "0",
           "--checkpoint-location", str(tmp / "ck"), "--log-level", "warn", *extra]
    if catalog:
        cmd += ["--catalog-uri", catalog]
    env = cdcflow_env()
    env.pop("ICEBERG_CATALOG_URI", None)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def load(ns):
    return rest_catalog().load_table(f"{ns}.customers")


def append_rows(tbl):
    a = tbl.scan().to_arrow().select(["customer_id", "full_name", "_cdc_operation", "_source_lsn"])
    return sorted(tuple(r.values()) for r in a.to_pylist())


def upsert_rows(tbl):
    a = tbl.scan().to_arrow().select(["customer_id", "full_name", "email", "_source_lsn"])
    return sorted(tuple(r.values()) for r in a.to_pylist())


def offsets(tbl):
    return tbl.current_snapshot().summary[f"cdcflow.offsets.{TOPIC}.0"]


def test_append_and_resume(place):
    wh, ns, tmp = place
    events = tmp / "events.jsonl"
    write_events(events, 0, 60)
    r = run(events, wh, ns, "append", tmp)
    assert r.returncode == 0, r.stderr
    tbl = load(ns)
    assert tbl.location() == f"{wh}/{ns}/customers"
    assert tbl.metadata_location.startswith(f"{wh}/{ns}/customers/metadata/")
    assert append_rows(tbl) == expected_append(60)
    assert offsets(tbl) == "60"
    nsnap = len(tbl.metadata.snapshots)

    # Nothing new: the run commits nothing.
    r = run(events, wh, ns, "append", tmp)
    assert r.returncode == 0, r.stderr
    tbl = load(ns)
    assert len(tbl.metadata.snapshots) == nsnap
    assert append_rows(tbl) == expected_append(60)

    # New events: only those are appended (no event twice).
    write_events(events, 60, 90)
    r = run(events, wh, ns, "append", tmp)
    assert r.returncode == 0, r.stderr
    tbl = load(ns)
    assert append_rows(tbl) == expected_append(90)
    assert offsets(tbl) == "90"
    assert len(tbl.metadata.snapshots) == nsnap + 1


def test_upsert_resume_scan_and_history(place):
    wh, ns, tmp = place
    events = tmp / "events.jsonl"
    write_events(events, 0, 100)
    r = run(events, wh, ns, "upsert", tmp)
    assert r.returncode == 0, r.stderr
    tbl = load(ns)
    assert upsert_rows(tbl) == expected_upsert(100)
    # The field ids the data files carry are the catalog's: identifier field customer_id, required.
    assert [tbl.schema().find_field(i).name for i in tbl.schema().identifier_field_ids] == ["customer_id"]
    assert tbl.properties.get("cdcflow.mode") == "upsert"

    write_events(events, 100, 250)
    r = run(events, wh, ns, "upsert", tmp, "--max-offsets-per-trigger", "40")
    assert r.returncode == 0, r.stderr
    tbl = load(ns)
    assert upsert_rows(tbl) == expected_upsert(250)
    assert offsets(tbl) == "250"
    nsnap = len(tbl.metadata.snapshots)
    assert nsnap == 1 + 4                     # 150 events in batches of 40
    assert any(t.delete_files for t in tbl.scan().plan_files()), "upsert retires rows by position deletes"

    r = run(events, wh, ns, "upsert", tmp)
    assert r.returncode == 0, r.stderr
    assert len(load(ns).metadata.snapshots) == nsnap

    # cdcflow's own commands find the table through the catalog.
    loc = f"{wh}/{ns}/customers"
    env = cdcflow_env(ICEBERG_CATALOG_URI=CATALOG_URI)
    s = subprocess.run([CDCFLOW, "scan", loc, "--format", "jsonl", "--columns", "customer_id,_source_lsn"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert s.returncode == 0, s.stderr
    got = sorted((j["customer_id"], j["_source_lsn"]) for j in map(json.loads, s.stdout.splitlines()))
    assert got == sorted((k, lsn) for k, _, _, lsn in expected_upsert(250))
    h = subprocess.run([CDCFLOW, "history", loc], capture_output=True, text=True, timeout=120, env=env)
    assert h.returncode == 0, h.stderr
    ids = [str(sn.snapshot_id) for sn in tbl.metadata.snapshots]
    assert all(i in h.stdout for i in ids), h.stdout
    assert f"{TOPIC}.0=250" in h.stdout
    # time travel to the first snapshot, by id
    first = tbl.metadata.snapshots[0]
    s = subprocess.run([CDCFLOW, "scan", loc, "--snapshot", str(first.snapshot_id), "--format", "jsonl",
                        "--columns", "customer_id,_source_lsn"], capture_output=True, text=True, timeout=120,
                       env=env)
    assert s.returncode == 0, s.stderr
    assert sorted(json.loads(x)["_source_lsn"] for x in s.stdout.splitlines()) == \
        sorted(lsn for *_, lsn in expected_upsert(100))


def test_optimize_and_expire_through_the_catalog(place):
    wh, ns, tmp = place
    events = tmp / "events.jsonl"
    write_events(events, 0, 120)
    r = run(events, wh, ns, "upsert", tmp, "--max-offsets-per-trigger", "30")
    assert r.returncode == 0, r.stderr
    loc = f"{wh}/{ns}/customers"
    env = cdcflow_env(ICEBERG_CATALOG_URI=CATALOG_URI)
    o = subprocess.run([CDCFLOW, "optimize", loc], capture_output=True, text=True, timeout=120, env=env)
    assert o.returncode == 0, o.stderr
    tbl = load(ns)
    assert tbl.current_snapshot().summary.operation.value == "replace"
    assert upsert_rows(tbl) == expected_upsert(120)
    assert offsets(tbl) == "120"             # the replace snapshot keeps where to resume
    x = subprocess.run([CDCFLOW, "expire-snapshots", loc, "--older-than", "0s", "--retain-last", "1"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert x.returncode == 0, x.stderr
    tbl = load(ns)
    assert len(tbl.metadata.snapshots) == 1
    assert upsert_rows(tbl) == expected_upsert(120)
    # and a writer resumes on the expired table
    write_events(events, 120, 150)
    r = run(events, wh, ns, "upsert", tmp)
    assert r.returncode == 0, r.stderr
    assert upsert_rows(load(ns)) == expected_upsert(150)


def one_line(r):
    return [line for line in r.stderr.splitlines() if line.strip()]


def test_s3_without_catalog_is_refused(place):
    wh, ns, tmp = place
    events = tmp / "events.jsonl"
    write_events(events, 0, 5)
    r = run(events, wh, ns, "append", tmp, catalog=None)
    lines = one_line(r)
    assert r.returncode in (1, 2) and len(lines) == 1, (r.returncode, lines)
    assert "--catalog-uri" in lines[0] and "REST catalog" in lines[0], lines
    assert not list_keys(wh.removeprefix("s3://cdcflow/") + "/")


def test_wrong_catalog_uri_is_one_line(place):
    wh, ns, tmp = place
    events = tmp / "events.jsonl"
    write_events(events, 0, 5)
    r = run(events, wh, ns, "append", tmp, catalog="http://127.0.0.1:9")
    lines = one_line(r)
    assert r.returncode in (1, 2) and len(lines) == 1, (r.returncode, lines)
    assert "127.0.0.1:9" in lines[0], lines
    assert not list_keys(wh.removeprefix("s3://cdcflow/") + "/")
    # the commands too
    s = subprocess.run([CDCFLOW, "scan", f"{wh}/{ns}/customers"], capture_output=True, text=True, timeout=120,
                       env=cdcflow_env(ICEBERG_CATALOG_URI="http://127.0.0.1:9"))
    lines = one_line(s)
    assert s.returncode != 0 and len(lines) == 1 and "127.0.0.1:9" in lines[0], lines
