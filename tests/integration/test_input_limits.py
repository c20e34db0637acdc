"""test_input_limits.py - what the operator hands cdcflow that could hurt it or leak: oversized bad
messages (their dead letters must fit the dead-letter topic and the stream must go on) and secrets
in Kafka properties (never in PID files or logs).

Runs against the local stack (Kafka on 127.0.0.1:9092); every test uses private topic names.
"""

import json
import os
import socket
import subprocess
import time
import uuid

import pytest

from conftest import CDCFLOW, KAFKA_BOOTSTRAP, ROOT

SCRIPT = os.path.join(ROOT, "scripts", "orchestrate_streaming_pipelines.sh")
SECRETS = {
    "sasl.password": "pw-" + uuid.uuid4().hex,
    "ssl.key.password": "kp-" + uuid.uuid4().hex,
    "ssl.keystore.password": "ks-" + uuid.uuid4().hex,
    "ssl.key.pem": "pem-" + uuid.uuid4().hex,
}


MiB = 1 << 20


def good_event(i):
    """A Debezium change event (schemaless JSON) of a customers insert with id i."""
    row = {"customer_id": i, "email": "u%d@example.com" % i, "first_name": "Ann", "last_name": "Lee",
           "city": "Springfield", "state": "IL", "country": "USA", "is_active": True, "customer_tier": "gold"}
    return json.dumps({"before": None, "after": row,
                       "source": {"version": "2.7.0.Final", "connector": "postgresql", "name": "pg",
                                  "ts_ms": 1700000000000, "db": "cdcdb", "schema": "public", "table": "customers",
                                  "lsn": 1000 + i},
                       "op": "c", "ts_ms": 1700000000001}).encode()


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


def create_topic(name, max_message_bytes):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    fs = admin.create_topics([NewTopic(name, 1, 1, config={"max.message.bytes": str(max_message_bytes)})])
    fs[name].result(30)


def topic_max_message_bytes(name):
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    return int(admin.describe_configs([res])[res].result(30)["max.message.bytes"].value)


def produce(topic, values):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": KAFKA_BOOTSTRAP, "message.max.bytes": 30_000_000})
    for v in values:
        p.produce(topic, value=v, key=b"k")
    assert p.flush(60) == 0


def consume_all(topic, n, timeout=60):
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


@pytest.mark.parametrize("dlq_limit", [None, 300_000], ids=["dlq-created-by-cdcflow", "dlq-exists-smaller"])
def test_huge_bad_messages_are_dead_lettered_truncated_and_the_stream_goes_on(tmp_path, stack, private_topics,
                                                                               dlq_limit):
    from deltalake import DeltaTable

    topic = "cdcflow-it-big-" + uuid.uuid4().hex[:8]
    private_topics.append(topic)
    create_topic(topic, 25_000_000)
    if dlq_limit:
        create_topic(topic + ".dlq", dlq_limit)        # made by an operator, smaller than cdcflow's
    big2 = b'{"payload": "' + b"x" * (2 * MiB)        # 2 MB, never closed: a parse error
    big20 = b'{"payload": "' + b"y" * (20 * MiB) + b'"}'  # 20 MB: over the 16 MB cap (toobig)
    # offsets: 0 good, 1 bad 2 MB, 2 good, 3 bad 20 MB, 4 good
    values = [good_event(1), big2, good_event(2), big20, good_event(3)]
    produce(topic, values)
    path = str(tmp_path / "t")
    r = subprocess.run([CDCFLOW, "delta", "--available-now", "--topic", topic, "--table-path", path,
                        "--metrics-port", "0", "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:6]],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "2 dead-letter" in r.stderr, r.stderr[-4000:]
    rows = DeltaTable(path).to_pyarrow_table().to_pylist()
    assert sorted(row["customer_id"] for row in rows) == [1, 2, 3]

    limit = topic_max_message_bytes(topic + ".dlq")
    assert limit == (dlq_limit or MiB)                  # cdcflow's topic fits its producer's message.max.bytes
    dl = consume_all(topic + ".dlq", 2)
    assert len(dl) == 2
    by_offset = {}
    for m in dl:
        h = {k: v.decode() for k, v in (m.headers() or [])}
        by_offset[int(h["cdcflow.error.offset"])] = (h, m.value(), m.key())
    assert sorted(by_offset) == [1, 3]
    for off, code in ((1, "parse"), (3, "toobig")):
        h, value, key = by_offset[off]
        assert h["cdcflow.error.truncated"] == "true"
        assert h["cdcflow.error.code"] == code
        assert h["cdcflow.error.reason"].startswith(code + ": ")
        assert h["cdcflow.error.topic"] == topic and h["cdcflow.error.partition"] == "0"
        assert key == b"k"
        assert 0 < len(value) < limit and values[off].startswith(value)   # the head of the original
        assert len(value) > limit - 4096                                  # as much as fits
    assert "toobig" in by_offset[3][0]["cdcflow.error.reason"]

    # The commit covered the dead-lettered offsets: a rerun reads nothing.
    r = subprocess.run([CDCFLOW, "delta", "--available-now", "--topic", topic, "--table-path", path,
                        "--metrics-port", "0", "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:6]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "0 messages" in r.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(env, *args, timeout=120):
    return subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_orchestrated_secrets_stay_out_of_pid_file_and_log(tmp_path, stack):
    topic = "cdcflow-it-secret-" + uuid.uuid4().hex[:8]
    log = tmp_path / "delta.log"
    props = []
    for i, (k, v) in enumerate(SECRETS.items()):
        # Both spellings getopt takes: "--kafka-prop K=V" and "--kafka-prop=K=V".
        props += ["--kafka-prop=%s=%s" % (k, v)] if i % 2 else ["--kafka-prop", "%s=%s" % (k, v)]
    env = dict(os.environ)
    env.update({
        "CDCFLOW_BIN": CDCFLOW,
        "CDCFLOW_RUN_DIR": str(tmp_path / "run"),
        "DELTA_LOG": str(log),
        "DELTA_METRICS_PORT": str(free_port()),
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP,
        "DELTA_ARGS": " ".join(["--topic", topic, "--table-path", str(tmp_path / "t"),
                                "--group-id", "cdcflow-it-" + uuid.uuid4().hex[:6]] + props),
        "SKIP_PREREQS": "1",
        "START_TIMEOUT": "60",
        "STOP_TIMEOUT": "60",
    })
    pid_file = tmp_path / "run" / "delta.pid"
    try:
        r = run_script(env, "start", "delta")
        assert r.returncode == 0, r.stdout + r.stderr
        text = pid_file.read_text()
        pid = int(text.splitlines()[0])
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            assert SECRETS["sasl.password"].encode() in f.read()   # the process has it, the file must not
        for k, v in SECRETS.items():
            assert v not in text, "%s saved in the PID file" % k
            assert k + "=***" in text
        # The masked command line still identifies the process.
        r = run_script(env, "status")
        assert "delta    running" in r.stdout, r.stdout + r.stderr
        assert pid_file.exists()
        for k, v in SECRETS.items():
            assert v not in r.stdout + r.stderr
        # A PID file of an older script (the raw command line) is still trusted, and scrubbed.
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read().replace(b"\0", b" ").decode()
        pid_file.write_text("%d\n%s\n" % (pid, raw))
        r = run_script(env, "status")
        assert "delta    running" in r.stdout, r.stdout + r.stderr
        assert pid_file.read_text() == text
    finally:
        r = run_script(env, "stop", "delta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not pid_file.exists()
    logged = log.read_text()
    assert "stopped cleanly" in logged
    for k, v in SECRETS.items():
        assert v not in logged, "%s in the log" % k

    # A PID file whose PID now belongs to another process is stale: removed, not trusted.
    other = subprocess.Popen(["sleep", "30"])
    try:
        pid_file.parent.mkdir(exist_ok=True)
        pid_file.write_text("%d\n%s\n" % (other.pid, text.splitlines()[1]))
        r = run_script(env, "status")
        assert "delta    stopped" in r.stdout, r.stdout + r.stderr
        assert not pid_file.exists()
        assert other.poll() is None                                 # and not signalled
    finally:
        other.kill()
        other.wait()
