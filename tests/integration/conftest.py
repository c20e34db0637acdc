"""conftest.py - shared fixtures of the integration tests: the local stack, the Debezium connector, readers.

The stack (scripts/stack.sh) must be up; scripts/run_integration.sh starts it.  Tests that need it
fail with a clear message when it is down rather than skip, so a green run means the chain was tested.

DuckDB cannot download extensions on this machine.  Its delta, iceberg and avro extensions come
from the PyPI packages duckdb-extension-{delta,iceberg,avro} (pinned with duckdb in
tests/requirements.txt) and are loaded from their files by duckdb_conn():

    from conftest import duckdb_conn
    con = duckdb_conn()
    con.sql("SELECT count(*) FROM delta_scan('/path/to/table')")
    con.sql("SELECT count(*) FROM iceberg_scan('/path/to/table')")

or take the `ddb` fixture, which yields such a connection and closes it afterwards.
"""

import glob
import importlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CDCFLOW = os.path.join(ROOT, "build", "cdcflow")
CONNECTOR_JSON = os.path.join(ROOT, "deploy", "debezium", "postgres-cdc-connector.json")

# The stack's ports, as scripts/stack.sh takes them (STACK_*_PORT, for a second stack beside the shared one).
PG_PORT = int(os.environ.get("STACK_PG_PORT", "5432"))
PG_DSN = dict(host="127.0.0.1", port=PG_PORT, dbname="cdcdb", user="cdcuser", password="cdcpass")
KAFKA_BOOTSTRAP = f"127.0.0.1:{os.environ.get('STACK_KAFKA_PORT', '9092')}"
CONNECT_URL = f"http://127.0.0.1:{os.environ.get('STACK_CONNECT_PORT', '8083')}"
REGISTRY_URL = f"http://127.0.0.1:{os.environ.get('STACK_REGISTRY_PORT', '8085')}"
# What cdcflow's own commands (connector, peek, pipelines) read to find that stack.
os.environ.setdefault("PGPORT", str(PG_PORT))
os.environ.setdefault("KAFKA_CONNECT_URL", CONNECT_URL)
os.environ.setdefault("KAFKA_BOOTSTRAP_SERVERS", KAFKA_BOOTSTRAP)
os.environ.setdefault("SCHEMA_REGISTRY_URL", REGISTRY_URL + "/apis/registry/v2")
CONNECTOR_NAME = "postgres-cdc-connector"
SLOT_NAME = "postgres_debezium_slot"
TABLES = ("customers", "orders", "products", "inventory")
TOPIC_PREFIX = "postgres"

DUCKDB_EXTENSIONS = ("avro", "delta", "iceberg")


def pytest_configure(config):
    # pyiceberg 0.8 uses pydantic idioms newer pydantic releases deprecate; that noise is not ours.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pyiceberg.*")


# ----------------------------------------------------------------- DuckDB

def duckdb_extension_path(name):
    """Path of the <name>.duckdb_extension file shipped by PyPI package duckdb-extension-<name>."""
    import duckdb

    mod = importlib.import_module("duckdb_extension_" + name)
    base = os.path.join(os.path.dirname(mod.__file__), "extensions")
    want = os.path.join(base, "v" + duckdb.__version__, name + ".duckdb_extension")
    if os.path.exists(want):
        return want
    found = sorted(glob.glob(os.path.join(base, "v*", name + ".duckdb_extension")))
    raise RuntimeError(
        f"duckdb {duckdb.__version__} has no matching {name} extension (package has {found}); "
        "keep the duckdb and duckdb-extension-* pins in tests/requirements.txt equal")


def duckdb_conn(database=":memory:"):
    """A DuckDB connection with the avro, delta and iceberg extensions loaded from their PyPI packages.

    Autoinstall is off so a missing extension fails at once instead of trying the network.
    The caller owns the connection and closes it."""
    import duckdb

    con = duckdb.connect(database, config={"autoinstall_known_extensions": False})
    try:
        for name in DUCKDB_EXTENSIONS:
            con.execute(f"LOAD '{duckdb_extension_path(name)}'")
    except Exception:
        con.close()
        raise
    return con


@pytest.fixture
def ddb():
    con = duckdb_conn()
    yield con
    con.close()


# ------------------------------------------------------------------ stack

def http_json(method, path, body=None, timeout=10):
    """(status, decoded JSON or None) of a Kafka Connect REST call; status 0 when unreachable."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(CONNECT_URL + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, {"message": raw.decode(errors="replace")}
    except (urllib.error.URLError, OSError):
        return 0, None


def pg_connect():
    import psycopg2

    con = psycopg2.connect(connect_timeout=5, **PG_DSN)
    con.autocommit = True
    return con


@pytest.fixture(scope="session")
def stack():
    """Checks that PostgreSQL, Kafka and Kafka Connect answer; fails the test with what to do if not."""
    problems = []
    try:
        pg_connect().close()
    except Exception as e:  # noqa: BLE001 - any failure means "down"
        problems.append(f"PostgreSQL 127.0.0.1:{PG_PORT} ({e.__class__.__name__}: {str(e).strip()})")
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP}).list_topics(timeout=10)
    except Exception as e:  # noqa: BLE001
        problems.append(f"Kafka {KAFKA_BOOTSTRAP} ({e})")
    if http_json("GET", "/connectors")[0] != 200:
        problems.append(f"Kafka Connect {CONNECT_URL}")
    if problems:
        pytest.fail("stack is down: " + "; ".join(problems) + " - start it with scripts/stack.sh start")
    return True


@pytest.fixture
def pg(stack):
    con = pg_connect()
    yield con
    con.close()


def connector_state():
    """(connector state, [task states]) or (None, []) when not registered."""
    code, body = http_json("GET", f"/connectors/{CONNECTOR_NAME}/status")
    if code != 200 or not body:
        return None, []
    return body["connector"]["state"], [t["state"] for t in body.get("tasks", [])]


def cdcflow_connector_works():
    """True when build/cdcflow has a working `connector` command (not the placeholder)."""
    if not os.access(CDCFLOW, os.X_OK):
        return False
    r = subprocess.run([CDCFLOW, "connector", "--help"], capture_output=True, text=True, timeout=10)
    return r.returncode == 0 and "register" in (r.stdout + r.stderr)


def register_connector():
    """Registers the Debezium connector: `cdcflow connector register` when it works, else the REST API
    with deploy/debezium/postgres-cdc-connector.json.  Returns which way was used."""
    if cdcflow_connector_works():
        r = subprocess.run([CDCFLOW, "connector", "register"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.fail(f"cdcflow connector register failed ({r.returncode}): {r.stderr.strip()}")
        return "cdcflow"
    with open(CONNECTOR_JSON) as f:
        spec = json.load(f)
    spec["config"]["database.port"] = str(PG_PORT)
    deadline = time.monotonic() + 60
    while True:
        code, body = http_json("PUT", f"/connectors/{CONNECTOR_NAME}/config", spec["config"])
        if code in (200, 201):
            return "rest"
        # 409: the Connect group is rebalancing (just started); it settles within seconds.
        if code != 409 or time.monotonic() > deadline:
            pytest.fail(f"registering {CONNECTOR_NAME} failed: HTTP {code} {body}")
        time.sleep(1)


def wait_running(timeout=90):
    deadline = time.monotonic() + timeout
    state, tasks = None, []
    while time.monotonic() < deadline:
        state, tasks = connector_state()
        if state == "RUNNING" and tasks and all(t == "RUNNING" for t in tasks):
            return
        if state == "FAILED" or "FAILED" in tasks:
            break
        time.sleep(0.5)
    code, body = http_json("GET", f"/connectors/{CONNECTOR_NAME}/status")
    pytest.fail(f"connector {CONNECTOR_NAME} not RUNNING after {timeout}s: {body}")


@pytest.fixture(scope="session")
def connector(stack):
    """The Debezium connector, registered if absent, RUNNING, with its replication slot streaming.

    Once the slot exists every committed change is captured, so tests may write right after this."""
    state, _ = connector_state()
    how = "existing"
    if state is None:
        how = register_connector()
    elif state == "FAILED":
        http_json("POST", f"/connectors/{CONNECTOR_NAME}/restart?includeTasks=true")
    wait_running()
    wait_slot_active(SLOT_NAME, "the connector")
    return {"name": CONNECTOR_NAME, "registered_by": how}


def wait_slot_active(slot, who, timeout=60):
    """Wait until the replication slot streams: changes made from then on arrive as changes (c/u/d),
    not in a snapshot (r)."""
    con = pg_connect()
    try:
        deadline = time.monotonic() + timeout
        while True:
            with con.cursor() as cur:
                cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
                row = cur.fetchone()
            if row and row[0]:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"replication slot {slot} not active {timeout}s after {who} started")
            time.sleep(0.5)
    finally:
        con.close()


# ------------------------------------------------------------------ Kafka

def topic_for(table):
    return f"{TOPIC_PREFIX}.public.{table}"


def consume_until(topic, done, timeout=60, envelope=False):
    """Reads `topic` from the beginning, decoding each value as Debezium JSON (the payload, or the whole
    {"schema", "payload"} envelope when `envelope`; None for tombstones), until done(list) is true or
    `timeout` seconds pass.  Returns the list."""
    from confluent_kafka import Consumer, KafkaError

    c = Consumer({
        "bootstrap.servers": KAFKA_BOOTSTRAP,
        "group.id": "cdcflow-it-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "topic.metadata.refresh.interval.ms": 1000,
    })
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # In batches, and done() once per batch: the topics grow to many thousands of events and a
            # predicate that scans the whole list per message would make this quadratic.
            msgs = c.consume(num_messages=1000, timeout=0.5)
            for m in msgs:
                if m.error():
                    # The topic appears with its first event; until then the broker says it is unknown.
                    if m.error().code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                        continue
                    raise RuntimeError(f"consuming {topic}: {m.error()}")
                v = m.value()
                doc = json.loads(v) if v else None
                got.append(doc if envelope or doc is None else doc["payload"])
            if msgs and done(got):
                break
    finally:
        c.close()
    return got


def have_tool(name):
    return shutil.which(name) is not None
