"""test_pipeline.py - cdcflow delta / iceberg against the real chain PostgreSQL -> Debezium -> Kafka.

Rows are read back with engines we did not write (deltalake, DuckDB).  Each test marks the rows it
writes in PostgreSQL with a unique e-mail domain so that other writers of the shared database do not
disturb it; dead-letter tests use a private topic.
"""

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import CDCFLOW, KAFKA_BOOTSTRAP, consume_until, topic_for

TOPIC = topic_for("customers")


def run_cdcflow(*args, timeout=120, env=None):
    """Runs build/cdcflow with args; returns the CompletedProcess (stderr holds the log)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([CDCFLOW, *args], capture_output=True, text=True, timeout=timeout, env=e)


def delta_rows(path):
    from deltalake import DeltaTable

    return DeltaTable(path).to_pyarrow_table().to_pylist()


def write_marked_changes(pg, marker, n_insert=5, updates=(0, 1), deletes=(2,)):
    """Inserts n rows with e-mails at @<marker>, updates and deletes some; returns (ids, expected
    final rows {id: tier}, number of events)."""
    ids = []
    with pg.cursor() as cur:
        for i in range(n_insert):
            cur.execute(
                "INSERT INTO customers (email, first_name, last_name, city, state, country, is_active, "
                "customer_tier, lifetime_value, registration_date, last_updated) "
                "VALUES (%s, 'It', %s, 'Springfield', 'IL', 'USA', true, 'bronze', 10.50, now(), now()) "
                "RETURNING customer_id",
                (f"user{i}@{marker}", f"Row{i}"))
            ids.append(cur.fetchone()[0])
        for i in updates:
            cur.execute("UPDATE customers SET customer_tier = 'gold', last_updated = now() WHERE customer_id = %s",
                        (ids[i],))
        for i in deletes:
            cur.execute("DELETE FROM customers WHERE customer_id = %s", (ids[i],))
    final = {cid: ("gold" if i in updates else "bronze") for i, cid in enumerate(ids) if i not in deletes}
    return ids, final, n_insert + len(updates) + len(deletes)


def wait_in_kafka(ids, n_events, timeout=90):
    """Waits until Debezium has put n_events change events for these ids on the topic."""
    want = set(ids)

    def done(got):
        return sum(1 for p in got if p and ((p.get("after") or p.get("before") or {}).get("customer_id") in want)) \
            >= n_events

    got = consume_until(TOPIC, done, timeout=timeout)
    assert done(got), f"Debezium did not deliver {n_events} events for {sorted(want)} in {timeout}s"


@pytest.fixture
def marked(pg, connector):
    marker = f"it-{uuid.uuid4().hex[:10]}.example"
    ids, final, n = write_marked_changes(pg, marker)
    wait_in_kafka(ids, n)
    return {"marker": marker, "ids": ids, "final": final, "events": n}


def test_delta_append_and_upsert_match_postgres(tmp_path, marked, pg):
    append_path, upsert_path = str(tmp_path / "append"), str(tmp_path / "upsert")
    group = "cdcflow-it-" + uuid.uuid4().hex[:8]
    r = run_cdcflow("delta", "--available-now", "--table-path", append_path, "--metrics-port", "0",
                    "--group-id", group)
    assert r.returncode == 0, r.stderr
    assert "batch:" in r.stderr
    rows = [x for x in delta_rows(append_path) if x["email"] and x["email"].endswith("@" + marked["marker"])]
    # Append mode keeps every event: 5 inserts, 2 updates, 1 delete of our rows.
    ops = sorted(x["_cdc_operation"] for x in rows)
    assert ops == ["DELETE"] + ["INSERT"] * 5 + ["UPDATE"] * 2
    assert all(x["_pipeline_id"] == "postgres_to_delta" for x in rows)
    assert all(x["full_name"].startswith("It Row") for x in rows)

    r = run_cdcflow("delta", "--available-now", "--mode", "upsert", "--table-path", upsert_path,
                    "--metrics-port", "0", "--group-id", group + "-u")
    assert r.returncode == 0, r.stderr
    mirror = {x["customer_id"]: x["customer_tier"] for x in delta_rows(upsert_path)
              if x["customer_id"] in set(marked["ids"])}
    assert mirror == marked["final"]
    # The whole mirror equals PostgreSQL for every id Debezium had delivered when we read.
    with pg.cursor() as cur:
        cur.execute("SELECT customer_id FROM customers WHERE email LIKE %s", ("%@" + marked["marker"],))
        assert sorted(r[0] for r in cur.fetchall()) == sorted(mirror)


def table_offsets(path):
    """{partition: next offset} of TOPIC as recorded by the Delta log's txn actions."""
    got = {}
    log = os.path.join(path, "_delta_log")
    for name in sorted(os.listdir(log)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(log, name)) as f:
            for line in f:
                txn = json.loads(line).get("txn")
                if txn and txn["appId"].startswith("cdcflow-" + TOPIC + "-"):
                    part = int(txn["appId"].rsplit("-", 1)[1])
                    got[part] = max(got.get(part, 0), txn["version"])
    return got


def events_below(offsets):
    """Number of change events (not tombstones) in TOPIC below the given next offsets."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": "cdcflow-it-" + uuid.uuid4().hex,
                  "enable.auto.commit": False})
    n = 0
    try:
        for part, end in offsets.items():
            c.assign([TopicPartition(TOPIC, part, 0)])
            pos = 0
            deadline = time.monotonic() + 60
            while pos < end and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is None or m.error():
                    continue
                pos = m.offset() + 1
                if m.offset() < end and m.value():
                    n += 1
            assert pos >= end, f"could not read {TOPIC}[{part}] up to {end}"
    finally:
        c.close()
    return n


def test_resume_is_exactly_once(tmp_path, marked, pg, ddb):
    """Every event below the offsets the table records is in the table exactly once, across
    reruns with different consumer groups and new changes in between.  Counting against the
    topic (not against our own rows) keeps this exact while others write to the database."""
    path = str(tmp_path / "t")
    args = ["delta", "--available-now", "--table-path", path, "--metrics-port", "0"]

    def run_and_check():
        r = run_cdcflow(*args, "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:8])
        assert r.returncode == 0, r.stderr
        offs = table_offsets(path)
        rows = delta_rows(path)
        assert len(rows) == events_below(offs)
        assert ddb.sql(f"SELECT count(*) FROM delta_scan('{path}')").fetchone()[0] == len(rows)
        return offs, rows

    offs1, rows1 = run_and_check()
    # Again with another consumer group: progress comes from the table, nothing is read twice.
    offs2, rows2 = run_and_check()
    assert all(offs2[p] >= offs1[p] for p in offs1)
    # New changes: exactly those are added.
    marker2 = f"it-{uuid.uuid4().hex[:10]}.example"
    ids, _, n = write_marked_changes(pg, marker2, n_insert=3, updates=(0,), deletes=())
    wait_in_kafka(ids, n)
    offs3, rows3 = run_and_check()
    assert len([x for x in rows3 if x["email"] and x["email"].endswith("@" + marker2)]) == 4


def _produce(topic, values):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": KAFKA_BOOTSTRAP, "message.max.bytes": 10_000_000})
    for v in values:
        p.produce(topic, value=v, key=b"k")
    assert p.flush(30) == 0


@pytest.fixture
def private_topics():
    """Names of test-only topics; deleted (with their .dlq) after the test."""
    names = []
    yield names
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [t for n in names for t in (n, n + ".dlq") if t in existing]
    if doomed:
        for f in admin.delete_topics(doomed, operation_timeout=30).values():
            f.result(60)


def _consume_all(topic, n, timeout=60):
    from confluent_kafka import Consumer, KafkaError

    c = Consumer({"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": "cdcflow-it-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or (m.error() and m.error().code() in (KafkaError._PARTITION_EOF,
                                                                  KafkaError.UNKNOWN_TOPIC_OR_PART)):
                continue
            assert not m.error(), m.error()
            got.append(m)
    finally:
        c.close()
    return got


@pytest.fixture
def real_values(connector):
    """Three real Debezium messages (raw bytes) of customers inserts."""
    def inserts(got):
        return [d for d in got if d and (d.get("payload") or {}).get("op") in ("c", "r")]

    got = consume_until(TOPIC, lambda g: len(inserts(g)) >= 3, envelope=True)
    vals = [json.dumps(d).encode() for d in inserts(got)][:3]
    assert len(vals) == 3
    return vals


def test_dead_letter_topic_gets_bad_events_while_good_flow(tmp_path, real_values, private_topics):
    topic = "cdcflow-it-dlq-" + uuid.uuid4().hex[:8]
    private_topics.append(topic)
    unknown_op = json.loads(real_values[1])
    unknown_op["payload"]["op"] = "x"
    bad = [b"not json at all", real_values[0][: len(real_values[0]) // 2], json.dumps(unknown_op).encode(),
           b'{"payload":' + b" " * 300_000 + b"}"]
    # offsets: 0 good, 1 bad, 2 good, 3 bad, 4 bad, 5 good, 6 bad (over the cap)
    values = [real_values[0], bad[0], real_values[1], bad[1], bad[2], real_values[2], bad[3]]
    _produce(topic, values)
    path = str(tmp_path / "t")
    r = run_cdcflow("delta", "--available-now", "--topic", topic, "--table-path", path, "--metrics-port", "0",
                    "--max-message-bytes", "100000", "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:6])
    assert r.returncode == 0, r.stderr
    assert len(delta_rows(path)) == 3
    dl = _consume_all(topic + ".dlq", 4)
    assert len(dl) == 4
    by_offset = {}
    for m in dl:
        h = {k: v.decode() for k, v in (m.headers() or [])}
        assert h["cdcflow.error.topic"] == topic
        assert h["cdcflow.error.partition"] == "0"
        assert h["cdcflow.error.reason"]
        by_offset[int(h["cdcflow.error.offset"])] = (h, m.value(), m.key())
    assert sorted(by_offset) == [1, 3, 4, 6]
    for off in (1, 3, 4, 6):
        assert by_offset[off][1] == values[off]          # original bytes
        assert by_offset[off][2] == b"k"                   # original key
    assert "unknown op" in by_offset[4][0]["cdcflow.error.reason"]
    assert by_offset[6][0]["cdcflow.error.code"] == "toobig"
    # The table's commit covers the dead-lettered offsets: a rerun reads nothing.
    r = run_cdcflow("delta", "--available-now", "--topic", topic, "--table-path", path, "--metrics-port", "0",
                    "--max-message-bytes", "100000", "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:6])
    assert r.returncode == 0, r.stderr
    assert "0 messages" in r.stderr


def test_dlq_off_stops_without_committing(tmp_path, real_values, private_topics):
    topic = "cdcflow-it-off-" + uuid.uuid4().hex[:8]
    private_topics.append(topic)
    _produce(topic, [real_values[0], b"{broken", real_values[1]])
    path = str(tmp_path / "t")
    r = run_cdcflow("delta", "--available-now", "--topic", topic, "--table-path", path, "--metrics-port", "0",
                    "--dlq", "off", "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:6])
    assert r.returncode == 1
    assert f"{topic}[0] offset 1" in r.stderr
    assert not os.path.exists(os.path.join(path, "_delta_log", "00000000000000000000.json"))


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _metric(text, name):
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def test_metrics_health_and_sigterm(tmp_path, marked):
    port = 19400 + os.getpid() % 500
    path = str(tmp_path / "t")
    p = subprocess.Popen([CDCFLOW, "delta", "--table-path", path, "--metrics-port", str(port),
                          "--trigger-interval", "500ms", "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:6]],
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            try:
                status, text = _get(f"http://127.0.0.1:{port}/metrics")
                if status == 200 and (_metric(text, "cdcflow_batches_total") or 0) >= 1 \
                        and _metric(text, "cdcflow_consumer_lag") == 0:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert (_metric(text, "cdcflow_batches_total") or 0) >= 1, text
        def committed_events(t):
            return sum(_metric(t, f'cdcflow_events_total{{table="t",op="{op}"}}') or 0
                       for op in ("insert", "update", "delete", "read"))

        # Others may write meanwhile: compare when no commit happened around the table read.
        for _ in range(10):
            before = committed_events(_get(f"http://127.0.0.1:{port}/metrics")[1])
            rows = len(delta_rows(path))
            text = _get(f"http://127.0.0.1:{port}/metrics")[1]
            if committed_events(text) == before:
                break
        assert committed_events(text) == rows
        assert _metric(text, "cdcflow_up") == 1
        assert _metric(text, "cdcflow_table_version") >= 0
        assert _metric(text, "cdcflow_last_commit_timestamp_seconds") > time.time() - 120
        assert "cdcflow_batch_duration_seconds_bucket" in text
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        h = run_cdcflow("health", "--url", f"http://127.0.0.1:{port}", "--max-lag", "1000")
        assert h.returncode == 0, h.stdout + h.stderr
        assert h.stdout.startswith("healthy")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        err = p.stderr.read()
    assert rc == 0, err
    assert "stopped cleanly" in err
    h = run_cdcflow("health", "--url", f"http://127.0.0.1:{port}")
    assert h.returncode == 2


def test_iceberg_available_now(tmp_path, marked, ddb):
    wh = str(tmp_path / "wh")
    r = run_cdcflow("iceberg", "--available-now", "--warehouse", wh, "--metrics-port", "0",
                    "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:6])
    assert r.returncode == 0, r.stderr
    table = os.path.join(wh, "analytics", "customers_analytics")
    ops = ddb.sql(f"SELECT _cdc_operation, count(*) FROM iceberg_scan('{table}') "
                  f"WHERE email LIKE '%@{marked['marker']}' GROUP BY 1 ORDER BY 1").fetchall()
    assert ops == [("DELETE", 1), ("INSERT", 5), ("UPDATE", 2)]
    assert all(x == "postgres_to_iceberg" for (x,) in
               ddb.sql(f"SELECT DISTINCT _pipeline_id FROM iceberg_scan('{table}')").fetchall())
