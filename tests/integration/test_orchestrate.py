"""test_orchestrate.py - scripts/orchestrate_streaming_pipelines.sh driven as an operator would:
start both pipelines in the background, change PostgreSQL, watch `status`, stop, change more while
stopped, restart, and check that the Delta and Iceberg tables equal PostgreSQL with no event lost or
applied twice across the restart.

The pipelines consume the whole customers topic (upsert mode); the comparison covers a block of ids
only this test writes.
"""

import os
import random
import re
import socket
import subprocess
import time

import pytest
from conftest import CDCFLOW, KAFKA_BOOTSTRAP, ROOT

SCRIPT = os.path.join(ROOT, "scripts", "orchestrate_streaming_pipelines.sh")
ID_BASE = 8_100_000
COLS = ["customer_id", "email", "full_name", "customer_tier", "lifetime_value", "is_active"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def orch(tmp_path):
    """Environment of one orchestrated deployment in tmp_path; stops whatever it started."""
    tag = "%d" % random.randrange(10 ** 9)
    env = dict(os.environ)
    env.update({
        "CDCFLOW_BIN": CDCFLOW,
        "CDCFLOW_RUN_DIR": str(tmp_path / "run"),
        "DELTA_LOG": str(tmp_path / "kafka-to-delta.log"),
        "ICEBERG_LOG": str(tmp_path / "kafka-to-iceberg.log"),
        "DELTA_METRICS_PORT": str(free_port()),
        "ICEBERG_METRICS_PORT": str(free_port()),
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP,
        "KAFKA_TOPIC": "postgres.public.customers",
        "DELTA_TABLE_PATH": str(tmp_path / "delta" / "customers"),
        "ICEBERG_WAREHOUSE": str(tmp_path / "warehouse"),
        "ICEBERG_NAMESPACE": "analytics",
        "ICEBERG_TABLE": "customers_analytics",
        "CHECKPOINT_LOCATION": str(tmp_path / "ck"),
        "DELTA_ARGS": "--mode upsert --trigger-interval 500ms --group-id cdcflow-it-orch-d-" + tag,
        "ICEBERG_ARGS": "--mode upsert --trigger-interval 500ms --group-id cdcflow-it-orch-i-" + tag,
        "STOP_TIMEOUT": "60",
        "START_TIMEOUT": "60",
    })

    def run(*args, check=True, timeout=180):
        r = subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, "%s: rc=%d\n%s\n%s" % (args, r.returncode, r.stdout, r.stderr)
        return r

    run.env = env
    run.tmp = tmp_path
    yield run
    run("stop", "all", check=False)


def pg_rows(pg, lo, hi):
    with pg.cursor() as cur:
        cur.execute("""SELECT customer_id, email, concat_ws(' ', first_name, last_name), customer_tier,
                              lifetime_value::float8, is_active
                       FROM customers WHERE customer_id >= %s AND customer_id < %s""", (lo, hi))
        return {r[0]: tuple(r[1:]) for r in cur.fetchall()}


def keyed(rows, lo, hi):
    out = {}
    for r in rows:
        if lo <= r["customer_id"] < hi:
            assert r["customer_id"] not in out, "duplicate key %d" % r["customer_id"]
            out[r["customer_id"]] = tuple(r[c] for c in COLS[1:])
    return out


def delta_rows(env, lo, hi):
    from deltalake import DeltaTable
    path = env["DELTA_TABLE_PATH"]
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        return {}
    return keyed(DeltaTable(path).to_pyarrow_table(columns=COLS).to_pylist(), lo, hi)


def iceberg_rows(env, lo, hi):
    from pyiceberg.table import StaticTable
    table = os.path.join(env["ICEBERG_WAREHOUSE"], env["ICEBERG_NAMESPACE"], env["ICEBERG_TABLE"])
    hint = os.path.join(table, "metadata", "version-hint.text")
    if not os.path.exists(hint):
        return {}
    meta = os.path.join(table, "metadata", "v%s.metadata.json" % open(hint).read().strip())
    return keyed(StaticTable.from_metadata(meta).scan(selected_fields=tuple(COLS)).to_arrow().to_pylist(), lo, hi)


def wait_equal(pg, env, lo, hi, timeout=180):
    """Both tables equal PostgreSQL on [lo, hi) within the timeout (the pipelines run on their own)."""
    want = pg_rows(pg, lo, hi)
    deadline = time.time() + timeout
    while True:
        d, i = delta_rows(env, lo, hi), iceberg_rows(env, lo, hi)
        if d == want and i == want:
            return want
        if time.time() > deadline:
            missing_d = set(want) ^ set(d)
            missing_i = set(want) ^ set(i)
            pytest.fail("tables did not converge in %ds: delta differs on %d keys (%s...), iceberg on %d (%s...)"
                        % (timeout, len(missing_d) + sum(1 for k in want if k in d and d[k] != want[k]),
                           sorted(missing_d)[:5], len(missing_i) + sum(1 for k in want if k in i and i[k] != want[k]),
                           sorted(missing_i)[:5]))
        time.sleep(1)


def change(pg, lo, n, round_no):
    """Inserts on the first round, then updates and deletes of this block's rows."""
    with pg.cursor() as cur:
        if round_no == 0:
            cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (lo, lo + 1000))
            for i in range(n):
                cur.execute("""INSERT INTO customers (customer_id, email, first_name, last_name, is_active,
                                                      customer_tier, lifetime_value, registration_date)
                               VALUES (%s, %s, %s, %s, %s, 'bronze', %s, now())""",
                            (lo + i, "o%d@example.com" % i, "Orch%d" % i, "Test", i % 2 == 0, i * 1.5))
        else:
            for i in range(round_no, n, 4):
                cur.execute("UPDATE customers SET customer_tier = %s, lifetime_value = lifetime_value + 1 "
                            "WHERE customer_id = %s", ("tier%d" % round_no, lo + i))
            for i in range(round_no * 7, n, 29):
                cur.execute("DELETE FROM customers WHERE customer_id = %s", (lo + i,))


def status_fields(out, name):
    line = next((l for l in out.splitlines() if l.startswith(name)), "")
    return line, dict(re.findall(r"(\w+)=(\S+)", line))


def test_operator_start_status_stop_restart(pg, connector, orch):
    if not os.access(CDCFLOW, os.X_OK):
        pytest.fail("build/cdcflow is not built")
    env = orch.env
    lo = ID_BASE + random.randrange(0, 800) * 1000
    hi = lo + 1000

    r = orch("start")
    assert "delta: started" in r.stdout and "iceberg: started" in r.stdout, r.stdout
    # starting again is harmless
    assert "already running" in orch("start").stdout

    change(pg, lo, 200, 0)
    change(pg, lo, 200, 1)
    want = wait_equal(pg, env, lo, hi)
    assert len(want) > 150

    st = orch("status")
    versions = {}
    for name in ("delta", "iceberg"):
        line, f = status_fields(st.stdout, name)
        assert "running" in line, st.stdout
        assert f.get("pid", "").isdigit(), line
        assert f.get("version", "-") != "-", line
        versions[name] = int(float(f["version"]))
        assert f.get("dead_lettered") in ("0", "-"), line
        # batches, commit latency, backpressure and memory against the bound
        assert f.get("batch_rows", "-").isdigit() and f.get("commit_s", "-") != "-", line
        assert f.get("paused_s", "-") != "-", line
        used, bound = f.get("memory_mib", "-/-").split("/")
        assert float(bound) == 128.0 and float(used) <= float(bound), line

    # health probe agrees
    for name, port in (("delta", env["DELTA_METRICS_PORT"]), ("iceberg", env["ICEBERG_METRICS_PORT"])):
        h = subprocess.run([CDCFLOW, "health", "--url", "http://127.0.0.1:%s" % port],
                           capture_output=True, text=True, timeout=30)
        assert h.returncode == 0, (name, h.stdout, h.stderr)

    # more changes: versions rise
    change(pg, lo, 200, 2)
    wait_equal(pg, env, lo, hi)
    st = orch("status")
    for name in ("delta", "iceberg"):
        _, f = status_fields(st.stdout, name)
        assert int(float(f["version"])) > versions[name], st.stdout

    # graceful stop: SIGTERM, the batch in flight is committed, exit 0 (logged)
    r = orch("stop", "all")
    assert "delta: stopped" in r.stdout and "iceberg: stopped" in r.stdout
    assert orch("status", check=False).returncode != 0
    assert not os.listdir(env["CDCFLOW_RUN_DIR"]), "PID files left behind"

    # changes while stopped are picked up after the restart, exactly once
    change(pg, lo, 200, 3)
    r = orch("restart", "all")
    assert "delta: started" in r.stdout and "iceberg: started" in r.stdout
    change(pg, lo, 200, 5)
    wait_equal(pg, env, lo, hi)

    # a stale PID file is detected, not trusted
    orch("stop", "delta")
    with open(os.path.join(env["CDCFLOW_RUN_DIR"], "delta.pid"), "w") as f:
        f.write("999999\n")
    st = orch("status", check=False)
    assert re.search(r"^delta\s+stopped", st.stdout, re.M), st.stdout
    assert "stale PID file" in st.stderr

    logs = orch("logs", "iceberg").stdout
    assert logs.strip(), "iceberg log is empty"


def test_prerequisite_failure_says_what_to_do(orch):
    env = dict(orch.env)
    env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:%d" % free_port()
    r = subprocess.run([SCRIPT, "start", "delta"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "Kafka is not reachable" in r.stderr and "stack.sh start" in r.stderr, r.stderr
    r = subprocess.run([SCRIPT, "start", "nosuch"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "unknown pipeline" in r.stderr


def test_operator_runs_all_four_tables_from_config_files(pg, connector, orch):
    """DELTA_CONFIG / ICEBERG_CONFIG: each pipeline is one `cdcflow run FILE` serving all four topics, one
    table per topic; the script starts, reports and stops them like the single-table pipelines."""
    env, tmp = orch.env, orch.tmp
    topics = r"'^postgres\.public\.(customers|orders|products|inventory)$'"
    (tmp / "delta.conf").write_text(
        "# all four topics into Delta\n"
        "delta --topic %s --table-path %s/delta/{table} --mode upsert --trigger-interval 500ms "
        "--group-id %s-d --metrics-port %s\n"
        "table orders --partition-by status\n"
        % (topics, tmp, env["DELTA_ARGS"].split()[-1], env["DELTA_METRICS_PORT"]))
    (tmp / "iceberg.conf").write_text(
        "iceberg --topic %s --warehouse %s/warehouse --namespace analytics --table {table} --mode upsert "
        "--trigger-interval 500ms --group-id %s-i --metrics-port %s\n"
        % (topics, tmp, env["ICEBERG_ARGS"].split()[-1], env["ICEBERG_METRICS_PORT"]))
    env["DELTA_CONFIG"] = str(tmp / "delta.conf")
    env["ICEBERG_CONFIG"] = str(tmp / "iceberg.conf")
    env["DELTA_TABLE_PATH"] = str(tmp / "delta" / "customers")
    env["ICEBERG_TABLE"] = "customers"

    lo = ID_BASE + 850_000 + random.randrange(0, 100) * 1000
    hi = lo + 1000
    r = orch("start")
    assert "delta: started" in r.stdout and "iceberg: started" in r.stdout, r.stdout
    change(pg, lo, 100, 0)
    change(pg, lo, 100, 1)
    want = wait_equal(pg, env, lo, hi)
    assert len(want) > 80
    for t in ("customers", "orders", "products", "inventory"):
        assert os.path.isdir(tmp / "delta" / t / "_delta_log"), "no Delta table for " + t
        assert os.path.exists(tmp / "warehouse" / "analytics" / t / "metadata" / "version-hint.text"), \
            "no Iceberg table for " + t
    from deltalake import DeltaTable
    assert DeltaTable(str(tmp / "delta" / "orders")).metadata().partition_columns == ["status"]
    st = orch("status")
    for name in ("delta", "iceberg"):
        line, f = status_fields(st.stdout, name)
        assert "running" in line and f.get("version", "-") != "-", st.stdout
    r = orch("stop")
    assert "delta: stopped" in r.stdout and "iceberg: stopped" in r.stdout
    # changes while stopped arrive after a restart
    change(pg, lo, 100, 2)
    orch("start")
    wait_equal(pg, env, lo, hi)
