"""test_ops.py - the operator kit against the real stack: `cdcflow connector` registers and reports the
Debezium connector, `cdcflow generate` writes exactly what it says (and the same rows for the same seed),
`cdcflow peek` shows the events that reach Kafka.

Exact-count and reproducibility checks run in a private schema (libpq's PGOPTIONS search_path), so other
writers of the shared tables cannot disturb the counts, and Debezium (public.* only) captures nothing of
them.  Failure paths of `connector` that a healthy Connect cannot show (a FAILED task, a slot to drop)
use a small stand-in for the Connect REST API."""

import http.server
import json
import os
import re
import subprocess
import threading
import time
import uuid

import pytest

from conftest import CDCFLOW, CONNECTOR_NAME, PG_DSN, ROOT, SLOT_NAME, TABLES, http_json, pg_connect

SCHEMA_SQL = os.path.join(ROOT, "deploy", "postgres", "schema.sql")
PKS = {"customers": "customer_id", "products": "product_id", "inventory": "inventory_id", "orders": "order_id"}


def cdcflow(*args, env=None, timeout=180):
    e = dict(os.environ)
    e.update({"PGHOST": PG_DSN["host"], "PGPORT": str(PG_DSN["port"]), "PGUSER": PG_DSN["user"],
              "PGPASSWORD": PG_DSN["password"], "PGDATABASE": PG_DSN["dbname"]})
    e.update(env or {})
    return subprocess.run([CDCFLOW, *args], capture_output=True, text=True, timeout=timeout, env=e)


# ----------------------------------------------------------------- connector

def test_connector_register_twice_is_idempotent_and_running(connector):
    first = cdcflow("connector", "register", "--wait", "90")
    assert first.returncode == 0, first.stdout + first.stderr
    second = cdcflow("connector", "register", "--wait", "90")
    assert second.returncode == 0, second.stdout + second.stderr
    # The second run finds the config it would write and leaves the connector alone.
    assert f"connector {CONNECTOR_NAME} unchanged" in second.stdout, second.stdout
    for r in (first, second):
        assert f"connector {CONNECTOR_NAME}: RUNNING" in r.stdout, r.stdout
        assert "task 0: RUNNING" in r.stdout, r.stdout

    code, cfg = http_json("GET", f"/connectors/{CONNECTOR_NAME}/config")
    assert code == 200
    assert cfg["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert (cfg["plugin.name"], cfg["slot.name"], cfg["topic.prefix"]) == ("pgoutput", SLOT_NAME, "postgres")
    assert cfg["publication.autocreate.mode"] == "filtered"
    assert cfg["table.include.list"] == "public.customers,public.orders,public.products,public.inventory"
    assert cfg["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    assert cfg["value.converter.schemas.enable"] == "true"
    assert cfg["decimal.handling.mode"] == "precise"
    assert (cfg["database.hostname"], cfg["database.port"], cfg["database.dbname"]) == ("127.0.0.1", str(PG_DSN["port"]), "cdcdb")


def test_connector_register_resumes_a_paused_connector(connector):
    code, _ = http_json("PUT", f"/connectors/{CONNECTOR_NAME}/pause")
    assert code == 202
    try:
        deadline = time.monotonic() + 30
        while http_json("GET", f"/connectors/{CONNECTOR_NAME}/status")[1]["connector"]["state"] != "PAUSED":
            assert time.monotonic() < deadline, "Connect did not pause the connector"
            time.sleep(0.2)
        r = cdcflow("connector", "status")
        assert r.returncode == 1 and f"connector {CONNECTOR_NAME}: PAUSED" in r.stdout, r.stdout
        r = cdcflow("connector", "register", "--wait", "60")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"connector {CONNECTOR_NAME} is PAUSED; resuming it" in r.stdout, r.stdout
        assert "task 0: RUNNING" in r.stdout
    finally:
        http_json("PUT", f"/connectors/{CONNECTOR_NAME}/resume")


def test_connector_status(connector):
    r = cdcflow("connector", "status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(rf"^connector {CONNECTOR_NAME}: RUNNING on \S+$", r.stdout, re.M), r.stdout
    assert re.search(r"^  task 0: RUNNING on \S+$", r.stdout, re.M), r.stdout

    r = cdcflow("connector", "status", "--name", "cdcflow-it-" + uuid.uuid4().hex[:8])
    assert r.returncode == 1
    assert "not registered" in r.stdout


def test_connector_invalid_config_prints_connects_reason(stack):
    name = "cdcflow-it-bad-" + uuid.uuid4().hex[:8]
    # Connect validates the config on PUT (it logs in to PostgreSQL) and creates nothing when that fails.
    r = cdcflow("connector", "register", "--name", name, "--slot", "cdcflow_it_bad", "--publication",
                "cdcflow_it_bad", "--topic-prefix", "cdcflowitbad", "--db-password", "wrong", "--wait", "20")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "password authentication failed" in r.stderr, r.stderr
    assert http_json("GET", f"/connectors/{name}/status")[0] == 404


def test_connector_unreachable_says_how_to_start(tmp_path):
    r = cdcflow("connector", "status", "--connect-url", "http://127.0.0.1:9", "--timeout", "3")
    assert r.returncode == 1
    assert "not reachable" in r.stderr and "scripts/stack.sh start" in r.stderr, r.stderr
    r = cdcflow("connector", "register", "--connect-url", "http://127.0.0.1:9", "--timeout", "1", "--wait", "2")
    assert r.returncode == 1
    assert "scripts/stack.sh start" in r.stderr, r.stderr


def test_connector_usage():
    for sub in ([], ["register"], ["status"], ["delete"]):
        r = cdcflow("connector", *sub, "--help")
        assert r.returncode == 0 and "Usage: cdcflow connector" in r.stdout
    r = cdcflow("connector", "launch")
    assert r.returncode == 2 and "unknown action" in r.stderr


class FakeConnect:
    """The few Kafka Connect REST calls `cdcflow connector` makes, with canned answers; records requests."""

    def __init__(self, routes):
        self.routes = routes            # (method, path) -> (status, body or None)
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                fake.requests.append((self.command, self.path, body))
                status, doc = fake.routes.get((self.command, self.path.split("?")[0]), (404, {"message": "nope"}))
                raw = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_PUT = do_POST = do_DELETE = _answer

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_connector_failed_task_prints_trace_and_fails():
    trace = "org.apache.kafka.connect.errors.ConnectException: slot \"x\" is active\n" + \
            "".join(f"\tat frame{i}(X.java:{i})\n" for i in range(1, 30))
    status = {"name": "c", "type": "source", "connector": {"state": "RUNNING", "worker_id": "w:1"},
              "tasks": [{"id": 0, "state": "FAILED", "worker_id": "w:1", "trace": trace}]}
    fake = FakeConnect({("PUT", "/connectors/c/config"): (201, {"name": "c", "config": {}}),
                        ("GET", "/connectors/c/status"): (200, status),
                        ("POST", "/connectors/c/restart"): (202, status)})
    try:
        r = cdcflow("connector", "register", "--connect-url", fake.url, "--name", "c", "--wait", "30")
    finally:
        fake.close()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "connector c created" in r.stdout
    assert "task 0: FAILED" in r.stderr and 'ConnectException: slot "x" is active' in r.stderr, r.stderr
    assert "frame7(" in r.stderr and "frame8(" not in r.stderr, r.stderr     # the first lines only
    # One restart was asked for before giving up; the PUT carried the Debezium config.
    assert [m for m, p, _ in fake.requests].count("POST") == 1
    put = next(json.loads(b) for m, p, b in fake.requests if m == "PUT")
    assert put["plugin.name"] == "pgoutput" and put["slot.name"] == SLOT_NAME


def test_connector_delete_drops_the_connectors_own_slot(pg):
    slot = "cdcflow_it_" + uuid.uuid4().hex[:8]
    with pg.cursor() as cur:
        cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    fake = FakeConnect({("GET", "/connectors/c/config"): (200, {"name": "c", "slot.name": slot}),
                        ("DELETE", "/connectors/c"): (204, None)})
    try:
        r = cdcflow("connector", "delete", "--connect-url", fake.url, "--name", "c", "--drop-slot", "--wait", "10")
    finally:
        fake.close()
        with pg.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                        (slot,))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "connector c deleted" in r.stdout and f"replication slot {slot} dropped" in r.stdout, r.stdout
    assert ("DELETE", "/connectors/c", b"") in fake.requests


def test_connector_delete_never_drops_a_slot_in_use(pg, connector):
    # The real connector streams from SLOT_NAME; a delete of some other (absent) connector must leave it.
    fake = FakeConnect({})
    try:
        r = cdcflow("connector", "delete", "--connect-url", fake.url, "--name", "gone", "--drop-slot",
                    "--slot", SLOT_NAME)
    finally:
        fake.close()
    assert r.returncode == 1
    assert "not registered" in r.stdout and "in use by another client" in r.stderr, r.stdout + r.stderr
    with pg.cursor() as cur:
        cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (SLOT_NAME,))
        assert cur.fetchone() == (True,)


# ------------------------------------------------------------------ generate

@pytest.fixture
def private_schema(pg):
    """A fresh schema holding the source tables (deploy/postgres/schema.sql); its name, dropped after."""
    made = []

    def make():
        name = "cdcflow_it_" + uuid.uuid4().hex[:10]
        with pg.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {name}")
            cur.execute(f"SET search_path TO {name}")
            with open(SCHEMA_SQL) as f:
                cur.execute(f.read())
            cur.execute("SET search_path TO public")
        made.append(name)
        return name

    yield make
    with pg.cursor() as cur:
        for name in made:
            cur.execute(f"DROP SCHEMA {name} CASCADE")


def counts(pg, schema):
    with pg.cursor() as cur:
        out = {}
        for t in TABLES:
            cur.execute(f"SELECT count(*) FROM {schema}.{t}")
            out[t] = cur.fetchone()[0]
        return out


def dump(pg, schema):
    with pg.cursor() as cur:
        out = {}
        for t in TABLES:
            cur.execute(f"SELECT * FROM {schema}.{t} ORDER BY {PKS[t]}")
            out[t] = cur.fetchall()
        return out


def generate_json(schema, *args):
    r = cdcflow("generate", "--json", *args, env={"PGOPTIONS": f"-c search_path={schema}"})
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


PLAN = ["--seed", "20261124", "--customers", "300", "--products", "40", "--orders", "700",
        "--updates", "250", "--deletes", "60", "--batch", "64"]


def test_generate_counts_are_exact(pg, private_schema):
    schema = private_schema()
    s = generate_json(schema, *PLAN)
    got = counts(pg, schema)
    tables = s["tables"]
    for t in TABLES:
        assert got[t] == tables[t]["insert"] - tables[t]["delete"], (t, got, s)
    assert (tables["customers"]["insert"], tables["products"]["insert"], tables["inventory"]["insert"],
            tables["orders"]["insert"]) == (300, 40, 40, 700)
    assert sum(tables[t]["update"] for t in TABLES) == 250
    assert all(tables[t]["update"] > 0 for t in TABLES), s
    assert tables["orders"]["delete"] > 0 and tables["customers"]["delete"] > 0, s
    assert s["rows"] == sum(sum(v.values()) for v in tables.values())
    with pg.cursor() as cur:
        # Foreign keys held (no order without its customer, no inventory without its product) ...
        cur.execute(f"SELECT count(*) FROM {schema}.orders o LEFT JOIN {schema}.customers c USING (customer_id) "
                    "WHERE c.customer_id IS NULL")
        assert cur.fetchone() == (0,)
        # ... and values look like data: tiers, some NULL phones, a few non-ASCII names, order life cycle.
        cur.execute(f"SELECT DISTINCT customer_tier FROM {schema}.customers")
        assert {r[0] for r in cur.fetchall()} <= {"bronze", "silver", "gold", "platinum"}
        cur.execute(f"SELECT count(*) FILTER (WHERE phone IS NULL), count(*) FILTER (WHERE first_name !~ '^[ -~]*$') "
                    f"FROM {schema}.customers")
        nulls, non_ascii = cur.fetchone()
        assert nulls > 0 and non_ascii > 0
        cur.execute(f"SELECT DISTINCT status FROM {schema}.orders")
        assert {"pending", "paid"} <= {r[0] for r in cur.fetchall()}


def test_generate_same_seed_same_rows_and_dry_run_matches(pg, private_schema):
    a, b, c = private_schema(), private_schema(), private_schema()
    generate_json(a, *PLAN)
    generate_json(b, *PLAN)
    # --dry-run prints the same statements (ids from 1, as in fresh tables); psql runs them.
    dry = cdcflow("generate", "--dry-run", *PLAN)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("BEGIN;") == dry.stdout.count("COMMIT;") > 1
    env = dict(os.environ, PGPASSWORD=PG_DSN["password"], PGOPTIONS=f"-c search_path={c}")
    p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG_DSN["host"], "-p", str(PG_DSN["port"]),
                        "-U", PG_DSN["user"], "-d", PG_DSN["dbname"]], input=dry.stdout, capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    da, db, dc = dump(pg, a), dump(pg, b), dump(pg, c)
    assert sum(len(v) for v in da.values()) > 900
    assert da == db
    assert da == dc

    d = private_schema()
    generate_json(d, *(PLAN[:1] + ["7"] + PLAN[2:]))
    assert dump(pg, d) != da


def test_generate_percentages_and_existing_rows(pg, private_schema):
    schema = private_schema()
    generate_json(schema, "--seed", "1", "--customers", "100", "--products", "10", "--orders", "90",
                  "--updates", "0", "--deletes", "0")
    # Nothing inserted: percentages are of the rows already there (100 + 10 + 10 + 90 = 210).
    s = generate_json(schema, "--seed", "2", "--customers", "0", "--products", "0", "--orders", "0",
                      "--updates", "10%", "--deletes", "0")
    assert sum(s["tables"][t]["update"] for t in TABLES) == 21
    s = generate_json(schema, "--seed", "3", "--customers", "50", "--products", "0", "--orders", "50",
                      "--updates", "20%", "--deletes", "5%")
    assert sum(s["tables"][t]["update"] for t in TABLES) == 20
    got = counts(pg, schema)
    assert got["customers"] == 150 - s["tables"]["customers"]["delete"]
    assert got["orders"] == 140 - s["tables"]["orders"]["delete"]


def test_generate_failed_transaction_is_not_counted(pg, private_schema):
    schema = private_schema()
    with pg.cursor() as cur:
        # About one order in five has 5 items: the first such insert fails its whole transaction.
        cur.execute(f"ALTER TABLE {schema}.orders ADD CONSTRAINT few_items CHECK (item_count < 5)")
    r = cdcflow("generate", "--json", "--seed", "11", "--customers", "200", "--products", "0", "--orders", "400",
                "--updates", "0", "--deletes", "0", "--batch", "50", env={"PGOPTIONS": f"-c search_path={schema}"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "few_items" in r.stderr and "rolled back" in r.stderr, r.stderr
    s = json.loads(r.stdout)
    got = counts(pg, schema)
    # What the summary claims is exactly what PostgreSQL kept: the failed transaction counts for nothing.
    assert got["customers"] == s["tables"]["customers"]["insert"]
    assert got["orders"] == s["tables"]["orders"]["insert"]
    assert s["failed"] is True and s["rows"] % 50 == 0 and s["rows"] < 600, s       # whole batches only


def test_generate_reports_and_refuses(private_schema):
    schema = private_schema()
    r = cdcflow("generate", "--seed", "5", "--customers", "20", "--orders", "10", "--products", "2",
                "--updates", "5", "--deletes", "1", "--rate", "2000", env={"PGOPTIONS": f"-c search_path={schema}"})
    assert r.returncode == 0, r.stderr
    assert re.search(r"^generate: seed 5, \d+ statements, \d+ rows changed in [0-9.]+ s \(\d+ rows/s, batch 100, "
                     r"rate-limited\)$", r.stdout, re.M), r.stdout
    assert re.search(r"^  customers\s+20\s+\d+\s+\d+$", r.stdout, re.M), r.stdout

    r = cdcflow("generate", "--customers", "0", "--orders", "5", "--updates", "0", "--deletes", "0",
                env={"PGOPTIONS": f"-c search_path={schema}_none"})
    assert r.returncode == 1 and "schema.sql" in r.stderr, r.stderr       # tables not found
    r = cdcflow("generate", "--dsn", "host=127.0.0.1 port=9 connect_timeout=2")
    assert r.returncode == 1 and "cannot connect" in r.stderr, r.stderr
    r = cdcflow("generate", "--updates", "lots")
    assert r.returncode == 2 and "--updates" in r.stderr


# ---------------------------------------------------------------------- peek

def peek_counts():
    r = cdcflow("peek", "--timeout", "20")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITIONS", "MESSAGES"], r.stdout
    return {ln.split()[0]: int(ln.split()[2]) for ln in lines[1:]}


def test_generated_changes_reach_kafka_and_peek_shows_them(pg, connector):
    before = peek_counts()
    seed = str(int(time.time()))
    # Inserts only: the statement sequence, emails included, depends on the seed alone, so --dry-run
    # tells which rows to look for whatever the tables already hold.
    plan = ["--seed", seed, "--customers", "25", "--products", "0", "--orders", "0", "--updates", "0",
            "--deletes", "0", "--new-rows-only"]
    dry = cdcflow("generate", "--dry-run", *plan)
    emails = set(re.findall(r"VALUES \('\d+', '([^']+@[^']+)'", dry.stdout))
    assert len(emails) >= 20, dry.stdout[:500]
    r = cdcflow("generate", "--json", *plan)
    assert r.returncode == 0, r.stderr
    # Then a mixed run: every kind of change on every table, on its own rows only (the tables are shared).
    s = cdcflow("generate", "--json", "--seed", seed, "--customers", "10", "--products", "5", "--orders", "30",
                "--updates", "40", "--deletes", "8", "--new-rows-only")
    assert s.returncode == 0, s.stderr
    tables = json.loads(s.stdout)["tables"]

    # Each row change is one event; each delete adds a tombstone.  Others may write too: at least.
    want = {f"postgres.public.{t}": before.get(f"postgres.public.{t}", 0) + tables[t]["insert"] +
            tables[t]["update"] + 2 * tables[t]["delete"] for t in TABLES}
    want["postgres.public.customers"] += 25
    deadline = time.monotonic() + 90
    while True:
        now = peek_counts()
        if all(now.get(k, 0) >= v for k, v in want.items()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    for k, v in want.items():
        assert now.get(k, 0) >= v, (k, now, want)

    r = cdcflow("peek", "postgres.public.customers", "-n", "0", "--timeout", "60")   # all of it
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and all(re.match(r"^\d+@\d+ key=\{.*\} op=(c|u|d|r|tombstone) value=", ln) for ln in lines), lines[:3]
    seen = {}
    for ln in lines:
        m = re.match(r"^\d+@\d+ key=(\{.*?\}) op=(\S+) value=(.*)$", ln)
        value = json.loads(m.group(3))
        assert json.loads(m.group(1)).keys() == {"customer_id"}
        if m.group(2) == "c":
            assert value["before"] is None and value["source"]["table"] == "customers"
            seen[value["after"]["email"]] = value["op"]
        if m.group(2) == "tombstone":
            assert value is None
    assert emails <= seen.keys(), sorted(emails - seen.keys())[:5]
    assert {"u", "d", "tombstone"} <= {re.match(r"^\S+ key=\S+ op=(\S+)", ln).group(1) for ln in lines}

    r = cdcflow("peek", "postgres.public.orders", "-n", "3", "--from-beginning")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
    assert r.stdout.splitlines()[0].startswith("0@0 ") or re.match(r"^0@\d+ ", r.stdout)


def test_peek_errors():
    r = cdcflow("peek", "postgres.public.no_such_table", "--timeout", "10")
    assert r.returncode == 1 and "Unknown topic" in r.stderr, r.stderr
    r = cdcflow("peek", "--bootstrap", "127.0.0.1:9", "--timeout", "2")
    assert r.returncode == 1 and "scripts/stack.sh start" in r.stderr, r.stderr
    r = cdcflow("peek", "--help")
    assert r.returncode == 0 and "Usage: cdcflow peek" in r.stdout
