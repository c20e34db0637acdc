"""test_input_cases.py - inputs of the real chain that are easy to get wrong: unchanged TOAST values
under REPLICA IDENTITY DEFAULT, upsert on events without a key, column types that widen (Iceberg) and
type changes a table cannot take (Delta; Iceberg for a non-widening change).

PostgreSQL -> Debezium -> Kafka -> cdcflow, read back with readers we did not write (deltalake and
DuckDB for Delta, pyiceberg and DuckDB for Iceberg) and compared with PostgreSQL.

Every test creates its own tables (random suffix) and registers its own Debezium connector (own
name, topic prefix, replication slot and publication) capturing only them; the teardown deletes the
connector with `cdcflow connector delete --drop-slot`, drops the publication, the tables and the
topics.  cdcflow runs with --available-now once the topic holds the expected number of messages.
Each test is bounded in time (TEST_BUDGET_S, and a timeout on every wait and subprocess).
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from decimal import Decimal

import pytest

from conftest import CDCFLOW, KAFKA_BOOTSTRAP, consume_until, duckdb_conn, http_json

TEST_BUDGET_S = 420
UNAVAILABLE = "__debezium_unavailable_value"
TOAST_LEN = 12_800


# ------------------------------------------------------------------ helpers

@pytest.fixture(autouse=True)
def time_bound(request):
    """Fails the test when it runs longer than TEST_BUDGET_S (the chain fixture's teardown, which
    must run to release the replication slot, cancels the alarm first)."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"{request.node.name} ran longer than {TEST_BUDGET_S}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_BUDGET_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def cdcflow(*args, timeout=180):
    """Runs build/cdcflow; the CompletedProcess gets .elapsed (seconds)."""
    t0 = time.monotonic()
    r = subprocess.run([CDCFLOW, *args], capture_output=True, timeout=timeout)
    r.elapsed = time.monotonic() - t0
    r.stderr_bytes = r.stderr
    # Decoded leniently so that a stray byte cannot hide the message; tests that check a message
    # also check that it is clean UTF-8 (clean_utf8).
    r.stdout = r.stdout.decode(errors="backslashreplace")
    r.stderr = r.stderr.decode(errors="backslashreplace")
    return r


def clean_utf8(r):
    try:
        r.stderr_bytes.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def tail(text, n=25):
    return "\n".join(text.strip().splitlines()[-n:])


def fp(v):
    """A long text as (length, md5 prefix) so that assertion diffs stay readable."""
    if isinstance(v, str) and len(v) > 64:
        return ("len=%d" % len(v), hashlib.md5(v.encode()).hexdigest()[:12])
    return v


def random_text(n):
    """n characters of md5 hex digests of random bytes: pglz cannot shrink it below the TOAST
    threshold, so PostgreSQL stores it out of line."""
    out = []
    while sum(map(len, out)) < n:
        out.append(hashlib.md5(os.urandom(16)).hexdigest())
    return "".join(out)[:n]


def no_dead_letters(path):
    return not os.path.exists(path) or os.path.getsize(path) == 0


def dead_letters(path):
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read()[:2000]


class Chain:
    """Tables of one test and the Debezium connector that captures them."""

    def __init__(self, pg):
        self.pg = pg
        self.sfx = uuid.uuid4().hex[:10]
        self.name = f"cdcflow-it-input-{self.sfx}"
        self.prefix = f"itin{self.sfx}"
        self.slot = f"itin_slot_{self.sfx}"
        self.pub = f"itin_pub_{self.sfx}"
        self.tables = []
        self.registered = False

    def sql(self, q, args=None):
        with self.pg.cursor() as cur:
            cur.execute(q, args)
            return cur.fetchall() if cur.description else None

    def table(self, base, columns):
        name = f"{base}_{self.sfx}"
        self.sql(f"CREATE TABLE {name} ({columns})")
        self.tables.append(name)
        return name

    def topic(self, table):
        return f"{self.prefix}.public.{table}"

    def start(self):
        """Registers the connector for the tables made so far and waits until its slot streams: from
        then on every committed change of those tables reaches Kafka."""
        self.registered = True
        r = cdcflow("connector", "register", "--name", self.name,
                    "--tables", ",".join("public." + t for t in self.tables),
                    "--topic-prefix", self.prefix, "--slot", self.slot, "--publication", self.pub,
                    "--wait", "90", timeout=150)
        assert r.returncode == 0, f"connector register failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        deadline = time.monotonic() + 60
        while True:
            row = self.sql("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (self.slot,))
            if row and row[0][0]:
                return
            assert time.monotonic() < deadline, f"replication slot {self.slot} not active 60s after register"
            time.sleep(0.5)

    def messages(self, table, n, timeout=120, envelope=False):
        """The first messages of the table's topic once it holds n (tombstones are None); fails if
        Debezium delivers fewer within timeout, or more (the topic is this test's own)."""
        got = consume_until(self.topic(table), lambda g: len(g) >= n, timeout=timeout, envelope=envelope)
        assert len(got) == n, f"{self.topic(table)}: expected {n} messages, found {len(got)} in {timeout}s"
        return got

    def teardown(self):
        """Every step runs whatever the earlier ones did; returns what went wrong."""
        problems = []

        def step(what, fn):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - cleanup goes on, the problem is reported
                problems.append(f"{what}: {e.__class__.__name__}: {e}")

        def delete_connector():
            r = cdcflow("connector", "delete", "--name", self.name, "--drop-slot", "--wait", "60", timeout=120)
            if r.returncode != 0:
                problems.append(f"connector delete --drop-slot failed ({r.returncode}): {r.stdout} {r.stderr}")
                http_json("DELETE", f"/connectors/{self.name}")

        def release_slot():
            # Never leave a slot behind on the shared stack: it would hold WAL for ever.
            deadline = time.monotonic() + 60
            while True:
                row = self.sql("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (self.slot,))
                if not row:
                    return
                if not row[0][0]:
                    problems.append(f"slot {self.slot} was still there after the connector was deleted")
                    self.sql("SELECT pg_drop_replication_slot(%s)", (self.slot,))
                    return
                if time.monotonic() > deadline:
                    problems.append(f"slot {self.slot} still active 60s after the connector was deleted")
                    return
                time.sleep(0.5)

        def delete_topics():
            from confluent_kafka.admin import AdminClient

            admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
            doomed = [t for t in admin.list_topics(timeout=10).topics if t.startswith(self.prefix + ".")]
            if doomed:
                for f in admin.delete_topics(doomed, operation_timeout=30).values():
                    f.result(60)

        if self.registered:
            step("deleting the connector", delete_connector)
            step("releasing the slot", release_slot)
            step("dropping the publication", lambda: self.sql(f"DROP PUBLICATION IF EXISTS {self.pub}"))
        for t in self.tables:
            step(f"dropping {t}", lambda t=t: self.sql(f"DROP TABLE IF EXISTS {t}"))
        step("deleting the topics", delete_topics)
        return problems


@pytest.fixture
def chain(pg):
    c = Chain(pg)
    yield c
    signal.alarm(0)                 # the cleanup must run whatever the budget says
    problems = c.teardown()
    assert not problems, "; ".join(problems)


def run_delta(chain, table, path, mode, dlq, tmp_path, extra=()):
    return cdcflow("delta", "--bootstrap", KAFKA_BOOTSTRAP, "--topic", chain.topic(table),
                   "--table-path", str(path), "--mode", mode, "--available-now", "--dlq", "file:" + str(dlq),
                   "--checkpoint-location", str(tmp_path / "ck"), "--metrics-port", "0",
                   "--group-id", "cdcflow-it-input-" + uuid.uuid4().hex[:8], *extra)


def run_iceberg(chain, table, warehouse, mode, dlq, tmp_path, extra=()):
    return cdcflow("iceberg", "--bootstrap", KAFKA_BOOTSTRAP, "--topic", chain.topic(table),
                   "--warehouse", str(warehouse), "--namespace", "it", "--table", table,
                   "--mode", mode, "--available-now", "--dlq", "file:" + str(dlq),
                   "--checkpoint-location", str(tmp_path / "ck"), "--metrics-port", "0",
                   "--group-id", "cdcflow-it-input-" + uuid.uuid4().hex[:8], *extra)


def ok(r, what):
    assert r.returncode == 0, f"{what}: exit {r.returncode}\n{tail(r.stderr)}"


# readers

def delta_rows(path, cols):
    from deltalake import DeltaTable

    return DeltaTable(str(path)).to_pyarrow_table(columns=cols).to_pylist()


def delta_version(path):
    from deltalake import DeltaTable

    return DeltaTable(str(path)).version()


def duck_rows(sql):
    con = duckdb_conn()
    try:
        rel = con.sql(sql)
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()


def delta_offsets(path, topic):
    """{partition: next offset} of topic from the txn actions of the Delta log."""
    got = {}
    log = os.path.join(str(path), "_delta_log")
    for name in sorted(os.listdir(log)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(log, name)) as f:
            for line in f:
                txn = json.loads(line).get("txn")
                if txn and txn["appId"].startswith("cdcflow-" + topic + "-"):
                    part = int(txn["appId"].rsplit("-", 1)[1])
                    got[part] = max(got.get(part, 0), txn["version"])
    return got


def high_watermark(topic):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": "cdcflow-it-" + uuid.uuid4().hex})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def ice_location(warehouse, table):
    return os.path.join(str(warehouse), "it", table)


def ice_metadata_file(location):
    hint = open(os.path.join(location, "metadata", "version-hint.text")).read().strip()
    return os.path.join(location, "metadata", f"v{hint}.metadata.json")


def ice_table(location):
    from pyiceberg.table import StaticTable

    return StaticTable.from_metadata(ice_metadata_file(location))


def ice_rows(location, cols):
    return ice_table(location).scan(selected_fields=tuple(cols)).to_arrow().to_pylist()


def by_id(rows, cols):
    out = {}
    for r in rows:
        assert r["id"] not in out, f"duplicate key {r['id']}"
        out[r["id"]] = tuple(fp(r[c]) for c in cols)
    return out


def pg_by_id(chain, table, cols):
    rows = chain.sql(f"SELECT id, {', '.join(cols)} FROM {table} ORDER BY id")
    return {r[0]: tuple(fp(v) for v in r[1:]) for r in rows}


# ------------------------------------------------- 1. unchanged TOAST values

def test_unchanged_toast_under_replica_identity_default(chain, tmp_path):
    t = chain.table("toast", "id int PRIMARY KEY, name text, description text")
    # The point of the test: PostgreSQL's default replica identity, not FULL.
    assert chain.sql("SELECT relreplident FROM pg_class WHERE relname = %s", (t,))[0][0] == "d"
    chain.start()
    d1, d2 = random_text(TOAST_LEN), random_text(TOAST_LEN)
    dlq = tmp_path / "dead-letters.jsonl"
    d_up, d_app, wh = tmp_path / "delta_upsert", tmp_path / "delta_append", tmp_path / "warehouse"
    cols = ["name", "description"]

    problems = []           # every mismatch of every phase and reader, reported together

    def check(cond, what):
        if not cond:
            problems.append(what)

    def run_all(phase, n_messages):
        chain.messages(t, n_messages)
        runs = {"Delta": run_delta(chain, t, d_up, "upsert", dlq, tmp_path),
                "append": run_delta(chain, t, d_app, "append", dlq, tmp_path),
                "Iceberg": run_iceberg(chain, t, wh, "upsert", dlq, tmp_path)}
        for what, r in runs.items():
            ok(r, f"phase {phase}, {what}")
        assert no_dead_letters(dlq), dead_letters(dlq)
        want = pg_by_id(chain, t, cols)
        loc = ice_location(wh, t)
        for reader, got in (
                ("deltalake, Delta upsert", by_id(delta_rows(d_up, ["id"] + cols), cols)),
                ("DuckDB, Delta upsert", by_id(duck_rows(f"SELECT id, name, description FROM delta_scan('{d_up}')"),
                                               cols)),
                ("pyiceberg, Iceberg upsert", by_id(ice_rows(loc, ["id"] + cols), cols)),
                ("DuckDB, Iceberg upsert", by_id(duck_rows(f"SELECT id, name, description FROM iceberg_scan('{loc}')"),
                                                 cols))):
            if got != want:
                log = [ln for ln in runs[reader.split()[-2]].stderr.splitlines()
                       if " INFO " not in ln or "batch:" in ln]
                problems.append(f"phase {phase}, {reader}: {got} != PostgreSQL {want}; cdcflow: {log}")

    # A: the row with the long description (the stored row every later update must keep it from)
    chain.sql(f"INSERT INTO {t} VALUES (1, 'n0', %s)", (d1,))
    assert chain.sql(f"SELECT length(description), pg_column_size(description) > 2000 FROM {t}")[0] == \
        (TOAST_LEN, True)
    run_all("A", 1)
    # B: two updates of name only, in two transactions (one batch, both on top of the stored row)
    chain.sql(f"UPDATE {t} SET name = 'n1' WHERE id = 1")
    chain.sql(f"UPDATE {t} SET name = 'n2' WHERE id = 1")
    evs = chain.messages(t, 3)
    # Debezium did send the placeholder: the case under test is real.
    assert [e["op"] for e in evs] == ["c", "u", "u"]
    assert [e["after"]["description"] == UNAVAILABLE for e in evs] == [False, True, True], \
        [fp(e["after"]["description"]) for e in evs]
    run_all("B", 3)
    # C: a second row, inserted and updated in the same batch (the update merges with a row not yet stored)
    chain.sql(f"INSERT INTO {t} VALUES (2, 'm0', %s)", (d2,))
    chain.sql(f"UPDATE {t} SET name = 'm1' WHERE id = 2")
    evs = chain.messages(t, 5)
    assert evs[4]["op"] == "u" and evs[4]["after"]["description"] == UNAVAILABLE
    run_all("C", 5)
    assert pg_by_id(chain, t, cols) == {1: ("n2", fp(d1)), 2: ("m1", fp(d2))}

    # The change feed: every update image carries the full description.
    from deltalake import DeltaTable

    feed = DeltaTable(str(d_up)).load_cdf(starting_version=0).read_all().to_pylist()
    full = {1: d1, 2: d2}
    images = [(r["_change_type"], r["id"], r["name"], fp(r["description"])) for r in feed]
    posts = [r for r in feed if r["_change_type"] == "update_postimage"]
    check(posts, f"no update_postimage in the change feed: {images}")
    check(all(r["description"] == full[r["id"]] for r in posts),
          f"change feed: an update_postimage lacks the description: {images}")
    pres = [r for r in feed if r["_change_type"] == "update_preimage"]
    check(all(r["description"] == full[r["id"]] for r in pres),
          f"change feed: an update_preimage lacks the description: {images}")
    check(sorted(r["name"] for r in posts) == ["n2"], f"change feed: update_postimages {images}")
    inserts = [r for r in feed if r["_change_type"] == "insert"]
    check(sorted((r["id"], r["description"] == full[r["id"]]) for r in inserts) == [(1, True), (2, True)],
          f"change feed: inserts {images}")

    # Append mode: one row per event; an update's unchanged TOAST cell is null, the insert has it.
    want_app = sorted([(1, "INSERT", "n0", fp(d1)), (1, "UPDATE", "n1", None), (1, "UPDATE", "n2", None),
                       (2, "INSERT", "m0", fp(d2)), (2, "UPDATE", "m1", None)])
    app = sorted((r["id"], r["_cdc_operation"], r["name"], fp(r["description"]))
                 for r in delta_rows(d_app, ["id", "_cdc_operation", "name", "description"]))
    check(app == want_app, f"deltalake, Delta append: {app} != {want_app}")
    app_duck = sorted((r["id"], r["_cdc_operation"], r["name"], fp(r["description"])) for r in duck_rows(
        f"SELECT id, _cdc_operation, name, description FROM delta_scan('{d_app}')"))
    check(app_duck == want_app, f"DuckDB, Delta append: {app_duck} != {want_app}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------- 2. upsert without a key

@pytest.mark.parametrize("sink", ["delta", "iceberg"])
def test_upsert_without_key_needs_primary_key(chain, tmp_path, sink):
    t = chain.table("nokey", "id int PRIMARY KEY, name text, qty integer")
    chain.start()
    chain.sql(f"INSERT INTO {t} VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30)")
    chain.sql(f"UPDATE {t} SET name = 'bb', qty = 21 WHERE id = 2")
    chain.sql(f"DELETE FROM {t} WHERE id = 3")
    # 3 inserts, an update, a delete and its tombstone; values only (a file source has no keys)
    msgs = chain.messages(t, 6, envelope=True)
    assert msgs[-1] is None and msgs[-2]["payload"]["op"] == "d"
    src = tmp_path / (chain.topic(t) + ".jsonl")
    with open(src, "w") as f:
        for m in msgs:
            f.write("null\n" if m is None else json.dumps(m, separators=(",", ":")) + "\n")
    dlq = tmp_path / "dead-letters.jsonl"
    if sink == "delta":
        out = tmp_path / "delta"

        def run(extra=()):
            return cdcflow("delta", "--source", "file:" + str(src), "--topic", chain.topic(t),
                           "--table-path", str(out), "--mode", "upsert", "--available-now",
                           "--dlq", "file:" + str(dlq), "--checkpoint-location", str(tmp_path / "ck"),
                           "--metrics-port", "0", *extra, timeout=60)
    else:
        out = tmp_path / "warehouse"

        def run(extra=()):
            return cdcflow("iceberg", "--source", "file:" + str(src), "--topic", chain.topic(t),
                           "--warehouse", str(out), "--namespace", "it", "--table", t,
                           "--mode", "upsert", "--available-now",
                           "--dlq", "file:" + str(dlq), "--checkpoint-location", str(tmp_path / "ck"),
                           "--metrics-port", "0", *extra, timeout=60)

    r = run()
    assert r.returncode == 2, f"exit {r.returncode}, want 2\n{tail(r.stderr)}"
    assert r.elapsed < 10, f"took {r.elapsed:.1f}s to refuse"
    assert re.search(r"upsert.*primary key", r.stderr, re.I), r.stderr
    assert "--primary-key" in r.stderr, r.stderr
    written = [os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs] \
        if os.path.exists(out) else []
    assert written == [], f"a table was written: {written[:10]}"
    assert no_dead_letters(dlq), dead_letters(dlq)

    r = run(["--primary-key", "id"])
    ok(r, "upsert with --primary-key id")
    assert no_dead_letters(dlq), dead_letters(dlq)
    cols = ["name", "qty"]
    want = pg_by_id(chain, t, cols)
    assert want == {1: ("a", 10), 2: ("bb", 21)}
    if sink == "delta":
        assert by_id(delta_rows(out, ["id"] + cols), cols) == want
        assert by_id(duck_rows(f"SELECT id, name, qty FROM delta_scan('{out}')"), cols) == want
    else:
        loc = ice_location(out, t)
        assert by_id(ice_rows(loc, ["id"] + cols), cols) == want
        assert by_id(duck_rows(f"SELECT id, name, qty FROM iceberg_scan('{loc}')"), cols) == want


# ------------------------------------------------- 3. type widening, Iceberg

# column: (type before, type after, values of rows 1-4 before, of rows 5-6 after, row 1's update)
# Values before are exact in float4, so PostgreSQL's real -> double conversion and the reader agree.
WIDEN_COLS = {
    "n": ("integer", "bigint", [7, -2147483648, 2147483647, None], [2 ** 40, -(2 ** 40) - 1], 2 ** 40 + 7),
    "f": ("real", "double precision", [1.5, -0.25, 2.0 ** 100, None], [0.1, 1e300], 2.718281828459045),
    "d": ("numeric(10,2)", "numeric(12,2)", [Decimal("12345678.90"), Decimal("-0.01"), Decimal("99999999.99"), None],
          [Decimal("1234567890.12"), Decimal("-9999999999.99")], Decimal("1234567890.12")),
}
# "n-f-d" is the case as specified; "n-d" leaves the real column out so that the widening of the
# other two is seen even while real columns fail elsewhere.
COLUMN_SETS = {"n-f-d": ["n", "f", "d"], "n-d": ["n", "d"]}


def alter_types(table, spec, cols):
    return f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} TYPE {spec[c][1]}" for c in cols)


def insert_rows(chain, table, cols, rows):
    for row in rows:
        chain.sql(f"INSERT INTO {table} (id, {', '.join(cols)}) VALUES ({', '.join(['%s'] * len(row))})", row)


def first_run_ok(r, dlq, what):
    ok(r, what)
    assert no_dead_letters(dlq), f"{what}: events were dead-lettered:\n{dead_letters(dlq)}"


@pytest.mark.parametrize("colset", list(COLUMN_SETS))
@pytest.mark.parametrize("mode", ["upsert", "append"])
def test_iceberg_type_widening(chain, tmp_path, mode, colset):
    from pyiceberg.types import DecimalType, DoubleType, LongType

    cols = COLUMN_SETS[colset]
    t = chain.table("widen", "id int PRIMARY KEY, " + ", ".join(f"{c} {WIDEN_COLS[c][0]}" for c in cols))
    chain.start()
    wh, dlq = tmp_path / "warehouse", tmp_path / "dead-letters.jsonl"
    loc = ice_location(wh, t)
    old = [(i + 1, *(WIDEN_COLS[c][2][i] for c in cols)) for i in range(4)]
    insert_rows(chain, t, cols, old)
    chain.messages(t, len(old))
    first_run_ok(run_iceberg(chain, t, wh, mode, dlq, tmp_path), dlq, f"iceberg {mode} before the ALTER")
    assert len(ice_table(loc).scan().to_arrow()) == len(old)

    chain.sql(alter_types(t, WIDEN_COLS, cols))
    new = [(i + 5, *(WIDEN_COLS[c][3][i] for c in cols)) for i in range(2)]
    insert_rows(chain, t, cols, new)
    upd = tuple(WIDEN_COLS[c][4] for c in cols)
    chain.sql(f"UPDATE {t} SET " + ", ".join(f"{c} = %s" for c in cols) + " WHERE id = 1", upd)
    chain.messages(t, len(old) + len(new) + 1)
    r = run_iceberg(chain, t, wh, mode, dlq, tmp_path)
    ok(r, f"iceberg {mode} after the ALTER (resume)")
    assert no_dead_letters(dlq), dead_letters(dlq)

    tbl = ice_table(loc)
    types = {f.name: f.field_type for f in tbl.schema().fields}
    want_types = {"n": LongType(), "f": DoubleType(), "d": DecimalType(12, 2)}
    assert {c: str(types[c]) for c in cols} == {c: str(want_types[c]) for c in cols}

    sel = ["id", "_cdc_operation"] + cols
    py = tbl.scan(selected_fields=tuple(sel)).to_arrow().to_pylist()
    dk = duck_rows(f"SELECT {', '.join(sel)} FROM iceberg_scan('{loc}')")
    pg_now = pg_by_id(chain, t, cols)
    assert pg_now[1] == upd and pg_now[5] == new[0][1:]
    if mode == "upsert":
        assert by_id(py, cols) == pg_now, "pyiceberg"
        assert by_id(dk, cols) == pg_now, "DuckDB"
    else:
        events = sorted([(row[0], "INSERT", *row[1:]) for row in old + new] + [(1, "UPDATE", *upd)], key=repr)
        for who, rows in (("pyiceberg", py), ("DuckDB", dk)):
            got = sorted([(r["id"], r["_cdc_operation"], *(r[c] for c in cols)) for r in rows], key=repr)
            assert got == events, who
        # the last event of each id is PostgreSQL's row
        last = {}
        for r in sorted(py, key=lambda r: r["_cdc_operation"] == "UPDATE"):
            last[r["id"]] = tuple(r[c] for c in cols)
        assert last == pg_now


# ------------------------------------------------- 4. type changes a table cannot take

TYPE_WORDS = {
    "qty": (r"integer|int|int32|int4", r"long|bigint|int64|int8"),
    "ratio": (r"float|real|float32|float4", r"double|double precision|float64|float8"),
    "amount": (r"decimal\(10, ?2\)|numeric\(10, ?2\)", r"decimal\(12, ?2\)|numeric\(12, ?2\)"),
    "code": (r"string|text|varchar|utf8", r"int|integer|int32|int4|long|bigint|int64"),
}
WAY_FORWARD = r"new table|another table|--table-path|re-?creat|rebuild|re-?snapshot|by hand|rewrite|" \
              r"type-?widening|set the table property"


def flags_named_exist(command, stderr):
    """The --flags the error lines name that `cdcflow COMMAND --help` does not know."""
    helptext = cdcflow(command, "--help", timeout=10).stdout
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", "\n".join(
        ln for ln in stderr.splitlines() if " ERROR " in ln)))
    return sorted(f for f in named if not re.search(re.escape(f) + r"\b", helptext))


def type_change_lines(stderr, columns):
    """Lines of stderr that name one of the columns with its old and its new type."""
    hits = []
    for line in stderr.splitlines():
        for c in columns:
            old, new = TYPE_WORDS[c]
            if re.search(rf"\b{c}\b", line) and re.search(rf"\b({old})\b", line, re.I) \
                    and re.search(rf"\b({new})\b", line, re.I):
                hits.append((c, line))
    return hits


def errors(stderr):
    return "\n".join(ln for ln in stderr.splitlines() if " ERROR " in ln or " WARN " in ln) or tail(stderr)


def delta_log_files(path):
    return sorted(os.listdir(os.path.join(str(path), "_delta_log")))


DELTA_COLS = {
    "qty": ("integer", "bigint", [1, 2, 3], 2 ** 40),
    "ratio": ("real", "double precision", [0.5, 1.5, 2.5], 0.1),
    "amount": ("numeric(10,2)", "numeric(12,2)", [Decimal("1.25"), Decimal("2.50"), Decimal("3.75")],
               Decimal("1234567890.12")),
}
DELTA_SETS = {"qty-ratio-amount": ["qty", "ratio", "amount"], "qty-amount": ["qty", "amount"]}


@pytest.mark.parametrize("colset", list(DELTA_SETS))
def test_delta_refuses_a_type_change(chain, tmp_path, colset):
    cols = DELTA_SETS[colset]
    t = chain.table("dchg", "id int PRIMARY KEY, " + ", ".join(f"{c} {DELTA_COLS[c][0]}" for c in cols))
    chain.start()
    path, dlq = tmp_path / "delta", tmp_path / "dead-letters.jsonl"
    insert_rows(chain, t, cols, [(i + 1, *(DELTA_COLS[c][2][i] for c in cols)) for i in range(3)])
    chain.messages(t, 3)
    first_run_ok(run_delta(chain, t, path, "upsert", dlq, tmp_path), dlq, "delta upsert before the ALTER")
    before_rows = by_id(delta_rows(path, ["id"] + cols), cols)
    assert before_rows == pg_by_id(chain, t, cols)
    before_version, before_log = delta_version(path), delta_log_files(path)
    before_offsets = delta_offsets(path, chain.topic(t))
    assert before_offsets == {0: 3}

    chain.sql(alter_types(t, DELTA_COLS, cols))
    insert_rows(chain, t, cols, [(4, *(DELTA_COLS[c][3] for c in cols))])
    chain.sql(f"UPDATE {t} SET {cols[0]} = %s WHERE id = 1", (DELTA_COLS[cols[0]][3] + 1,))
    chain.messages(t, 5)

    for attempt in ("first run", "restart"):
        r = run_delta(chain, t, path, "upsert", dlq, tmp_path)
        assert r.returncode == 1, f"{attempt}: exit {r.returncode}, want 1\n{errors(r.stderr)}"
        assert type_change_lines(r.stderr, cols), \
            f"{attempt}: no line names a column with its old and new type:\n{errors(r.stderr)}"
        assert re.search(WAY_FORWARD, r.stderr, re.I), f"{attempt}: no way forward in:\n{errors(r.stderr)}"
        assert not flags_named_exist("delta", r.stderr), \
            f"{attempt}: the message names flags cdcflow delta does not have: {flags_named_exist('delta', r.stderr)}"
        assert clean_utf8(r), f"{attempt}: stderr is not clean UTF-8:\n{errors(r.stderr)}"
        # unchanged and readable: no commit, no partial commit, offsets as before the change
        assert delta_log_files(path) == before_log, attempt
        assert delta_version(path) == before_version, attempt
        assert by_id(delta_rows(path, ["id"] + cols), cols) == before_rows, attempt
        assert by_id(duck_rows(f"SELECT id, {', '.join(cols)} FROM delta_scan('{path}')"), cols) == before_rows
        assert delta_offsets(path, chain.topic(t)) == before_offsets, attempt
        # nothing lost: the two events after the change are neither covered nor dead-lettered
        assert no_dead_letters(dlq), dead_letters(dlq)
        assert high_watermark(chain.topic(t)) == 5


def test_iceberg_refuses_a_non_widening_change(chain, tmp_path):
    t = chain.table("ichg", "id int PRIMARY KEY, code text")
    chain.start()
    wh, dlq = tmp_path / "warehouse", tmp_path / "dead-letters.jsonl"
    loc = ice_location(wh, t)
    chain.sql(f"INSERT INTO {t} VALUES (1, '10'), (2, '20')")
    chain.messages(t, 2)
    first_run_ok(run_iceberg(chain, t, wh, "upsert", dlq, tmp_path), dlq, "iceberg upsert before the ALTER")
    before_meta = ice_metadata_file(loc)
    before_snap = ice_table(loc).metadata.current_snapshot_id
    before_rows = by_id(ice_rows(loc, ["id", "code"]), ["code"])
    assert before_rows == {1: ("10",), 2: ("20",)}

    chain.sql(f"ALTER TABLE {t} ALTER COLUMN code TYPE integer USING code::integer")
    chain.sql(f"INSERT INTO {t} VALUES (3, 30)")
    chain.messages(t, 3)
    for attempt in ("first run", "restart"):
        r = run_iceberg(chain, t, wh, "upsert", dlq, tmp_path)
        assert r.returncode != 0, f"{attempt}: exit 0 on a string -> int change\n{errors(r.stderr)}"
        assert r.returncode == 1, f"{attempt}: exit {r.returncode}, want 1\n{errors(r.stderr)}"
        assert type_change_lines(r.stderr, ["code"]), \
            f"{attempt}: no line names column code with its old and new type:\n{errors(r.stderr)}"
        assert clean_utf8(r), f"{attempt}: stderr is not clean UTF-8:\n{errors(r.stderr)}"
        assert ice_metadata_file(loc) == before_meta, attempt
        assert ice_table(loc).metadata.current_snapshot_id == before_snap, attempt
        assert by_id(ice_rows(loc, ["id", "code"]), ["code"]) == before_rows, attempt
        assert by_id(duck_rows(f"SELECT id, code FROM iceberg_scan('{loc}')"), ["code"]) == before_rows
        assert no_dead_letters(dlq), dead_letters(dlq)
        assert high_watermark(chain.topic(t)) == 3
