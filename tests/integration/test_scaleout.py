"""test_scaleout.py - cdcflow scaled out: several processes of one consumer group writing one table,
under churn, and foreign writers (delta-rs, Spark) committing to cdcflow's tables between runs.

Exactly once is judged from the outside.  The events come from a private Kafka topic (a Debezium
customers stream made by scaleout_util.Model, which knows the state it produced); the tables are
read with deltalake, DuckDB, pyiceberg and Spark, never with cdcflow.  What must hold:

* the table ends equal to the produced state: every live key once, with its last image; deleted
  keys absent;
* at no table version / snapshot has a key two live rows;
* the Delta change feed holds each change at most once and in order: per key the post-image LSNs
  strictly increase across commits, and the last change per key agrees with the final state;
* the offsets stored in the table (Delta txn actions, Iceberg snapshot summaries) never move back
  and end at the topic's high watermarks.

CHAOS_SECONDS (default 180) is how long the churn lasts; SCALEOUT_SEED changes the schedule.
"""

import collections
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scaleout_util as su  # noqa: E402
from conftest import duckdb_conn  # noqa: E402

CHAOS_SECONDS = float(os.environ.get("CHAOS_SECONDS", "180"))
SEED = int(os.environ.get("SCALEOUT_SEED", "20261202"))
NKEYS = 1500
PARTITIONS = 3
RATE = 100                  # events per second during the chaos
SESSION_TIMEOUT_MS = 6000
APP_ID = "cdcflow"          # the Delta txn appId prefix cdcflow uses by default
MAX_SNAPSHOT_CHECKS = 250   # table versions / snapshots read back one by one, at most

JARS_DIR = os.environ.get("CF_SPARK_JARS", os.path.join(su.ROOT, ".cache", "spark", "jars"))
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"


def _need_binary():
    if not os.access(su.CDCFLOW, os.X_OK):
        pytest.fail("%s is not built (make -j2)" % su.CDCFLOW)


@pytest.fixture
def topic(stack):
    name = "scaleout.%s.customers" % uuid.uuid4().hex[:12]
    su.create_topic(name, PARTITIONS)
    yield name
    su.delete_topics([name])


def common_args(topic, group):
    return ["--topic", topic, "--group-id", group, "--bootstrap", su.KAFKA_BOOTSTRAP,
            "--metrics-port", "0", "--dlq", "off",
            "--kafka-prop", "session.timeout.ms=%d" % SESSION_TIMEOUT_MS,
            "--kafka-prop", "heartbeat.interval.ms=1000"]


def delta_argv(topic, group, path, mode="upsert", *extra):
    return [su.CDCFLOW, "delta", "--mode", mode, "--table-path", str(path)] + common_args(topic, group) + list(extra)


def iceberg_argv(topic, group, warehouse, table, mode="upsert", *extra):
    return [su.CDCFLOW, "iceberg", "--mode", mode, "--warehouse", str(warehouse), "--namespace", "ns",
            "--table", table] + common_args(topic, group) + list(extra)


# ------------------------------------------------------------------ readers (not cdcflow)

def delta_log_commits(path):
    """[(version, [actions])] of the JSON commits in _delta_log, in version order."""
    out = []
    for f in sorted(glob.glob(os.path.join(str(path), "_delta_log", "*.json"))):
        base = os.path.basename(f)[:-5]
        if not base.isdigit():
            continue
        with open(f) as fh:
            out.append((int(base), [json.loads(line) for line in fh if line.strip()]))
    return out


def delta_txn_history(path, topic, log_commits=delta_log_commits):
    """[(version, {partition: next offset})] of the commits that carry txn actions of `topic`;
    log_commits(path) reads the log (delta_log_commits: a local table)."""
    prefix = "%s-%s-" % (APP_ID, topic)
    hist = []
    for v, actions in log_commits(path):
        offs = {}
        for a in actions:
            t = a.get("txn")
            if t and t["appId"].startswith(prefix):
                offs[int(t["appId"][len(prefix):])] = t["version"]
        if offs:
            hist.append((v, offs))
    return hist


def delta_latest_offsets(path, topic):
    """{partition: next offset} the table's current state holds (deltalake's reconciled state is
    not exposed; the newest txn per appId in the log is what Delta's protocol says it is)."""
    got = {}
    for _, offs in delta_txn_history(path, topic):
        got.update(offs)
    return got


def iceberg_metadata(table_dir):
    hint = open(os.path.join(table_dir, "metadata", "version-hint.text")).read().strip()
    path = os.path.join(table_dir, "metadata", "v%s.metadata.json" % hint)
    with open(path) as f:
        return path, json.load(f)


def iceberg_offsets(summary, topic):
    prefix = "cdcflow.offsets.%s." % topic
    return {int(k[len(prefix):]): int(v) for k, v in summary.items() if k.startswith(prefix)}


def iceberg_snapshot_order(meta):
    """Snapshots in the order they became current (snapshot-log), falling back to sequence numbers."""
    by_id = {s["snapshot-id"]: s for s in meta.get("snapshots", [])}
    order = [by_id[e["snapshot-id"]] for e in meta.get("snapshot-log", []) if e["snapshot-id"] in by_id]
    if not order:
        order = sorted(by_id.values(), key=lambda s: (s.get("sequence-number", 0), s["timestamp-ms"]))
    return order


def iceberg_static(table_dir):
    from pyiceberg.table import StaticTable

    return StaticTable.from_metadata(iceberg_metadata(table_dir)[0])


def iceberg_snapshot_rows(tbl, snap):
    t = tbl.scan(snapshot_id=snap["snapshot-id"], selected_fields=("customer_id", "email")).to_arrow()
    return list(zip(t.column("customer_id").to_pylist(), t.column("email").to_pylist()))


def sample(seq, cap):
    """At most cap items of seq, evenly spread, always with the last one."""
    if len(seq) <= cap:
        return list(seq)
    step = len(seq) / float(cap - 1)
    idx = sorted({int(i * step) for i in range(cap - 1)} | {len(seq) - 1})
    return [seq[i] for i in idx]


# ------------------------------------------------------------------ state comparisons

def compare_state(rows, model, what):
    """Problems (strings) of `rows` (dicts with customer_id, email, _source_lsn) against the model,
    with counts of duplicate keys, resurrected deleted keys, stale rows, missing and unknown keys."""
    want = model.final_lsn()
    by_key = collections.defaultdict(list)
    for r in rows:
        by_key[r["customer_id"]].append(r)
    dups = {k: len(v) for k, v in by_key.items() if len(v) > 1}
    resurrected = sorted(k for k in by_key if k in model.gone)
    unknown = sorted(k for k in by_key if k not in want and k not in model.gone)
    missing = sorted(k for k in want if k not in by_key)
    stale, wrong_lsn_col = [], []
    for k, lsn in want.items():
        for r in by_key.get(k, []):
            got = su.lsn_of_email(r["email"])
            if got != lsn:
                stale.append((k, got, lsn))
            if r.get("_source_lsn") is not None and r["_source_lsn"] != got:
                wrong_lsn_col.append((k, r["_source_lsn"], got))
    problems = []
    if dups or resurrected or unknown or missing or stale or wrong_lsn_col:
        problems.append(
            "%s: %d rows for %d expected live keys: %d duplicate keys (%d extra rows, e.g. %s), "
            "%d resurrected deleted keys (e.g. %s), %d stale rows (key, lsn in table, lsn expected; e.g. %s), "
            "%d missing keys (e.g. %s), %d unknown keys %s, %d rows whose _source_lsn disagrees with their image %s"
            % (what, len(rows), len(want), len(dups), sum(dups.values()) - len(dups), list(dups.items())[:5],
               len(resurrected), resurrected[:5], len(stale), stale[:5], len(missing), missing[:5],
               len(unknown), unknown[:5], len(wrong_lsn_col), wrong_lsn_col[:5]))
    return problems


def history_problems(versions, read, what, label=lambda v: v):
    """Reads each of `versions` (read(v) -> [(customer_id, email)]) in commit order: no key may
    have two live rows at a version, and no key may go back to an older image than an earlier
    version showed (a stale batch committed late).  Returns (problems, versions checked)."""
    best = {}
    dup_at, back_at = [], []
    back_keys = set()
    for v in versions:
        rows = read(v)
        d = dup_keys([k for k, _ in rows])
        if d:
            dup_at.append((label(v), len(d), sum(d.values()) - len(d)))
        now = {}
        for k, e in rows:
            l = su.lsn_of_email(e)
            if l is None:
                continue
            now[k] = min(now.get(k, l), l)
        back = [(k, l, best[k]) for k, l in now.items() if k in best and l < best[k]]
        if back:
            back_at.append((label(v), len(back), back[:2]))
            back_keys.update(k for k, _, _ in back)
        for k, l in now.items():
            best[k] = max(best.get(k, l), l)
    problems = []
    if dup_at:
        problems.append("%s: %d of %d versions checked have keys with two live rows "
                        "(version, keys, extra rows): %s" % (what, len(dup_at), len(versions), dup_at[:10]))
    if back_at:
        problems.append("%s: %d of %d versions checked show %d keys back at an older image than an earlier "
                        "version had (version, keys, [(key, lsn, lsn seen before)]): %s"
                        % (what, len(back_at), len(versions), len(back_keys), back_at[:6]))
    return problems, len(versions)


def dup_keys(keys):
    c = collections.Counter(keys)
    return {k: n for k, n in c.items() if n > 1}


def offsets_problems(history, watermarks, what):
    """history: [(version or snapshot id, {partition: offset})]; offsets must never move back and
    end at the high watermarks."""
    problems, last, back = [], {}, []
    for v, offs in history:
        for p, o in offs.items():
            if p in last and o < last[p]:
                back.append((v, p, last[p], o))
            last[p] = max(last.get(p, o), o)
    final = {}
    for _, offs in history:
        final.update(offs)
    if back:
        problems.append("%s: stored offsets moved back %d times (version, partition, before, after): %s"
                        % (what, len(back), back[:8]))
    if final != watermarks:
        problems.append("%s: latest stored offsets %s != high watermarks %s" % (what, final, watermarks))
    return problems


def delta_checks(path, topic, model, watermarks, storage_options=None, log_commits=delta_log_commits,
                 duckdb_connect=duckdb_conn, max_checks=MAX_SNAPSHOT_CHECKS):
    """Every problem of the Delta table at `path`, as strings; and a few figures.  A table on object
    storage takes deltalake's storage_options, a reader of its log (see delta_txn_history) and a
    DuckDB connection that reaches it."""
    from deltalake import DeltaTable

    problems, figures = [], {}
    dt = DeltaTable(str(path), storage_options=storage_options)
    cols = ["customer_id", "email", "_source_lsn"]
    rows = dt.to_pyarrow_table(columns=cols).to_pylist()
    problems += compare_state(rows, model, "delta final (deltalake)")
    con = duckdb_connect()
    try:
        drows = [dict(zip(cols, r)) for r in
                 con.execute("SELECT customer_id, email, _source_lsn FROM delta_scan(?)", [str(path)]).fetchall()]
    finally:
        con.close()
    problems += compare_state(drows, model, "delta final (DuckDB)")

    # Every version (or a spread sample of them): no key twice, no key going back in time.
    latest = dt.version()
    figures["delta_versions"] = latest + 1

    def read(v):
        dt.load_as_version(v)
        t = dt.to_pyarrow_table(columns=["customer_id", "email"])
        return list(zip(t.column("customer_id").to_pylist(), t.column("email").to_pylist()))

    p, figures["delta_versions_checked"] = history_problems(
        sample(list(range(latest + 1)), max_checks), read, "delta versions")
    problems += p

    problems += offsets_problems(delta_txn_history(path, topic, log_commits), watermarks, "delta txn")

    # Change Data Feed: each change once, in order; the last change per key agrees with the end.
    dt = DeltaTable(str(path), storage_options=storage_options)
    cdf = dt.load_cdf(starting_version=0).read_all()
    cdf_rows = cdf.select(["customer_id", "email", "_change_type", "_commit_version"]).to_pylist()
    figures["cdf_rows"] = len(cdf_rows)
    per_key = collections.defaultdict(list)
    for r in cdf_rows:
        if r["_change_type"] == "update_preimage":
            continue
        per_key[r["customer_id"]].append((r["_commit_version"], r["_change_type"], su.lsn_of_email(r["email"])))
    produced_lsns = {k: {l for l, op in h if op != "d"} for k, h in model.history.items()}
    twice, out_of_order, foreign, last_wrong = [], [], [], []
    for k, changes in per_key.items():
        changes.sort(key=lambda c: (c[0], 0 if c[1] == "delete" else 1))
        posts = [(v, l) for v, t, l in changes if t in ("insert", "update_postimage")]
        seen = collections.Counter(l for _, l in posts)
        for l, n in seen.items():
            if n > 1:
                twice.append((k, l, n))
        for (v1, l1), (v2, l2) in zip(posts, posts[1:]):
            if l2 <= l1 and seen[l2] == 1 and seen[l1] == 1:
                out_of_order.append((k, v1, l1, v2, l2))
        for _, l in posts:
            if l not in produced_lsns.get(k, ()):
                foreign.append((k, l))
        last = changes[-1]
        if k in model.live:
            want = model.final_lsn()[k]
            if last[1] == "delete" or last[2] != want:
                last_wrong.append((k, last, want))
        elif last[1] != "delete":
            last_wrong.append((k, last, "deleted"))
    # A key created and deleted within one batch nets to no change (docs/delta.md), so only keys
    # live at the end must be in the feed.
    missing_keys = [k for k in model.history if k not in per_key and k in model.live]
    figures["cdf_keys"] = len(per_key)
    if twice or out_of_order or foreign or last_wrong or missing_keys:
        problems.append(
            "delta change feed (deltalake load_cdf, %d rows): %d changes applied more than once "
            "(key, lsn, times; e.g. %s), %d post-images out of LSN order (key, v1, lsn1, v2, lsn2; e.g. %s), "
            "%d post-images of no produced change %s, %d keys whose last change disagrees with the final "
            "state (key, (version, type, lsn), want; e.g. %s), %d live keys absent from the feed %s"
            % (len(cdf_rows), len(twice), twice[:5], len(out_of_order), out_of_order[:5], len(foreign),
               foreign[:5], len(last_wrong), last_wrong[:5], len(missing_keys), missing_keys[:5]))
    return problems, figures


def iceberg_checks(table_dir, topic, model, watermarks):
    problems, figures = [], {}
    tbl = iceberg_static(table_dir)
    cols = ("customer_id", "email", "_source_lsn")
    rows = tbl.scan(selected_fields=cols).to_arrow().to_pylist()
    problems += compare_state(rows, model, "iceberg final (pyiceberg)")
    con = duckdb_conn()
    try:
        drows = [dict(zip(cols, r)) for r in
                 con.execute("SELECT customer_id, email, _source_lsn FROM iceberg_scan(?)",
                             [str(table_dir)]).fetchall()]
    finally:
        con.close()
    problems += compare_state(drows, model, "iceberg final (DuckDB)")

    _, meta = iceberg_metadata(table_dir)
    order = iceberg_snapshot_order(meta)
    figures["iceberg_snapshots"] = len(order)
    # Every snapshot (or a spread sample) with DuckDB, a few with pyiceberg too: pyiceberg plans
    # a snapshot in about a second, DuckDB in a tenth.
    con = duckdb_conn()
    try:
        def ddb_rows(s):
            return con.execute("SELECT customer_id, email FROM iceberg_scan(?, snapshot_from_id=?)",
                               [str(table_dir), s["snapshot-id"]]).fetchall()

        p, figures["iceberg_snapshots_checked"] = history_problems(
            sample(order, MAX_SNAPSHOT_CHECKS), ddb_rows, "iceberg snapshots (DuckDB)",
            label=lambda s: "seq %s" % s.get("sequence-number"))
        problems += p
        p, figures["iceberg_snapshots_checked_pyiceberg"] = history_problems(
            sample(order, 8), lambda s: iceberg_snapshot_rows(tbl, s), "iceberg snapshots (pyiceberg)",
            label=lambda s: "seq %s" % s.get("sequence-number"))
        problems += p
    finally:
        con.close()
    hist = [(s.get("sequence-number"), iceberg_offsets(s.get("summary", {}), topic)) for s in order]
    no_offsets = [sq for sq, o in hist if not o]
    if no_offsets:
        problems.append("iceberg: %d snapshots of cdcflow carry no offsets: %s" % (len(no_offsets), no_offsets[:5]))
    problems += offsets_problems([h for h in hist if h[1]], watermarks, "iceberg snapshot offsets")
    current = meta.get("current-snapshot-id")
    cur = [s for s in order if s["snapshot-id"] == current]
    if cur and iceberg_offsets(cur[0].get("summary", {}), topic) != watermarks:
        problems.append("iceberg: current snapshot offsets %s != high watermarks %s"
                        % (iceberg_offsets(cur[0].get("summary", {}), topic), watermarks))
    return problems, figures


# ------------------------------------------------------------------ chaos schedule

def make_schedule(rnd, sink, nslots, seconds):
    """[(t, sink, slot, action, arg)]: staggered starts, then churn every few seconds on one slot
    while at least one other is up.  Actions: term (SIGTERM, restart after arg s), kill (SIGKILL,
    restart after arg s), pause (SIGSTOP for arg s, then SIGCONT)."""
    ev = [(0.0, sink, 0, "start", None),
          (rnd.uniform(3, 10), sink, 1, "start", None),
          (rnd.uniform(12, 25), sink, 2, "start", None)]
    free_at = [ev[i][0] for i in range(nslots)]
    t = 28.0
    actions = 0
    limit = max(3, int(seconds / 6))
    while actions < limit:
        t += rnd.uniform(5, 11)
        if t > seconds - 15:
            break
        up = [s for s in range(nslots) if free_at[s] <= t]
        if len(up) < 2:
            continue
        slot = rnd.choice(up)
        what = rnd.choices(["pause", "pause_short", "term", "kill"], weights=[4, 1, 3, 3])[0]
        if what == "pause":
            d = rnd.uniform(SESSION_TIMEOUT_MS / 1000 + 3, SESSION_TIMEOUT_MS / 1000 + 9)
            ev.append((t, sink, slot, "pause", round(d, 1)))
        elif what == "pause_short":
            d = rnd.uniform(1, SESSION_TIMEOUT_MS / 1000 - 2)
            ev.append((t, sink, slot, "pause", round(d, 1)))
        else:
            d = rnd.uniform(1, 6)
            ev.append((t, sink, slot, what, round(d, 1)))
        free_at[slot] = t + d + 2
        actions += 1
    return ev


def run_chaos(procs, schedule, seconds, log):
    """Applies the schedule to procs {(sink, slot): Proc}; follow-ups (resume, restart) are queued."""
    queue = sorted(schedule, key=lambda e: e[0])
    t0 = time.monotonic()
    pending = []   # (t, sink, slot, action)
    while queue or pending:
        now = time.monotonic() - t0
        nxt = min([e[0] for e in queue[:1]] + [p[0] for p in pending]) if (queue or pending) else seconds
        if nxt > now:
            time.sleep(min(0.2, nxt - now))
            for p in procs.values():
                if p.p is not None and not p.alive():
                    p.reap()
            continue
        if pending and pending[0][0] <= now and (not queue or pending[0][0] <= queue[0][0]):
            _, sink, slot, action = pending.pop(0)
            arg = None
        else:
            _, sink, slot, action, arg = queue.pop(0)
        p = procs[(sink, slot)]
        log.write("%7.1fs %-7s slot %d %s %s\n" % (now, sink, slot, action, "" if arg is None else arg))
        log.flush()
        if action == "start" or action == "restart":
            if p.p is not None and p.alive():
                if action == "restart":       # a SIGTERM that was not honoured in time
                    log.write("         %s slot %d still alive at restart: SIGKILL\n" % (sink, slot))
                    p.kill()
                else:
                    continue
            p.reap()
            p.start()
        elif action == "pause":
            p.pause()
            pending.append((now + arg, sink, slot, "resume"))
        elif action == "resume":
            p.resume()
        elif action == "term":
            p.signal(signal.SIGTERM)
            pending.append((now + arg, sink, slot, "restart"))
        elif action == "kill":
            p.kill()
            pending.append((now + arg, sink, slot, "restart"))
        pending.sort()
    remaining = seconds - (time.monotonic() - t0)
    if remaining > 0:
        time.sleep(remaining)


def wait_group_empty(group, timeout=40):
    """Waits until no member is left in the consumer group (SIGKILLed members linger until their
    session times out)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": su.KAFKA_BOOTSTRAP})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = admin.describe_consumer_groups([group])[group].result(10)
            if not d.members:
                return True
        except Exception:  # noqa: BLE001 - unknown group counts as empty
            return True
        time.sleep(1)
    return False


# ------------------------------------------------------------------ test 1

def test_chaos_three_processes_per_sink_exactly_once(topic, tmp_path):
    """Three cdcflow processes per sink in one consumer group, joining late, SIGTERMed, SIGSTOPped
    past their session timeout, SIGKILLed and restarted while a producer keeps changing 1,500 keys;
    both tables must end (and stay at every version) an exact mirror of what was produced."""
    _need_binary()
    rnd = random.Random(SEED)
    model = su.Model(NKEYS, seed=SEED)
    # Every key exists before the first process starts; the producer then churns them.
    p0 = su.producer()
    for cid in range(1, NKEYS + 1):
        k, v, *_ = model.event(cid=cid, op="c")
        p0.produce(topic, key=k, value=v)
        p0.poll(0)
    assert p0.flush(60) == 0

    delta_path = tmp_path / "delta" / "customers"
    warehouse = tmp_path / "warehouse"
    gid = uuid.uuid4().hex[:8]
    groups = {"delta": "scaleout-delta-" + gid, "iceberg": "scaleout-iceberg-" + gid}
    batch = ["--trigger-interval", "1s", "--max-offsets-per-trigger", "300"]
    argv = {"delta": delta_argv(topic, groups["delta"], delta_path, "upsert", *batch),
            "iceberg": iceberg_argv(topic, groups["iceberg"], warehouse, "customers", "upsert", *batch)}
    procs = {(sink, i): su.Proc("%s-%d" % (sink, i), argv[sink], tmp_path / ("%s-%d.log" % (sink, i)))
             for sink in argv for i in range(3)}
    schedule = make_schedule(random.Random(rnd.random()), "delta", 3, CHAOS_SECONDS) + \
        make_schedule(random.Random(rnd.random()), "iceberg", 3, CHAOS_SECONDS)
    sched_log = open(tmp_path / "schedule.log", "w")
    sched_log.write("seed %d, topic %s, %d s, planned:\n" % (SEED, topic, CHAOS_SECONDS))
    for e in sorted(schedule):
        sched_log.write("  %7.1fs %-7s slot %d %s %s\n" % (e[0], e[1], e[2], e[3], "" if e[4] is None else e[4]))
    sched_log.write("applied:\n")
    sched_log.flush()

    prod = su.ProducerThread(topic, model, RATE)
    problems, figures = [], {}
    drains = {}
    try:
        prod.start()
        run_chaos(procs, schedule, CHAOS_SECONDS, sched_log)
        prod.stop()
        figures["events"] = NKEYS + prod.produced
        figures["ops"] = dict(model.count)
        figures["live_keys"] = len(model.live)
        figures["deleted_keys"] = len(model.gone)
        for p in procs.values():
            p.terminate(timeout=30)
        crashed = [(p.name, rc, how) for p in procs.values() for rc, how in p.exits
                   if how in ("sigterm", "exited") and rc != 0]
        if crashed:
            errors = []
            for p in procs.values():
                with open(p.log_path, errors="replace") as f:
                    errors += [line.strip()[:260] for line in f if " ERROR " in line]
            problems.append("%d process exits with a non-zero status, on their own or after SIGTERM "
                            "(name, status, how): %s; their ERROR lines: %s" % (len(crashed), crashed, errors[-4:]))
        watermarks = su.end_offsets(topic, PARTITIONS)
        figures["watermarks"] = watermarks

        # Drain: one process per sink with --available-now, alone in its group.
        for sink in argv:
            wait_group_empty(groups[sink])
            drains[sink] = subprocess.Popen(argv[sink] + ["--available-now"],
                                            stdout=open(tmp_path / ("%s-drain.log" % sink), "w"),
                                            stderr=subprocess.STDOUT, cwd=su.ROOT)
        for sink, d in drains.items():
            try:
                rc = d.wait(180)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait(10)
                rc = "timeout"
            if rc != 0:
                problems.append("%s drain (--available-now) exited %s" % (sink, rc))

        dp, df = delta_checks(delta_path, topic, model, watermarks)
        problems += dp
        figures.update(df)
        ip, ifg = iceberg_checks(str(warehouse / "ns" / "customers"), topic, model, watermarks)
        problems += ip
        figures.update(ifg)
    finally:
        for p in procs.values():
            try:
                if p.alive():
                    p.kill()
            except Exception:  # noqa: BLE001 - cleanup goes on
                pass
        for d in drains.values():
            if d.poll() is None:
                d.kill()
                d.wait(10)
        prod._halt.set()
        prod.join(30)
        sched_log.close()

    print("chaos figures: %s" % figures)
    print(open(tmp_path / "schedule.log").read())
    if problems:
        tails = "\n".join("---- %s\n%s" % (os.path.basename(f), su.tail(f, 25))
                          for f in sorted(glob.glob(str(tmp_path / "*.log"))) if "schedule" not in f)
        pytest.fail("exactly-once violated under churn (%s):\n  %s\n\nschedule and logs in %s\n%s"
                    % (figures, "\n  ".join(problems), tmp_path, tails), pytrace=False)


# ------------------------------------------------------------------ test 2: foreign writers

FOREIGN_KEYS = range(900_001, 900_006)


def produce(topic, model, n=0, ops=()):
    """n random changes, then the given ones."""
    su.produce_ops(topic, model, [{}] * n + list(ops))


def run_drain(argv, log, timeout=120):
    rc = su.run_once(argv + ["--available-now"], log, timeout)
    assert rc == 0, "cdcflow exited %s:\n%s" % (rc, su.tail(log))


def append_problems(rows, model, topic_events, what):
    """Append mode: every produced event once (by LSN)."""
    got = collections.Counter(r["_source_lsn"] for r in rows)
    want = set(topic_events)
    twice = {l: n for l, n in got.items() if n > 1}
    missing = want - set(got)
    extra = set(got) - want
    if twice or missing or extra:
        return ["%s: %d rows for %d produced events: %d events twice or more (%d extra rows), %d missing, "
                "%d rows of no event" % (what, sum(got.values()), len(want), len(twice),
                                         sum(twice.values()) - len(twice), len(missing), len(extra))]
    return []


def all_lsns(model):
    return [l for h in model.history.values() for l, _ in h]


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_delta_resumes_after_delta_rs_append_compact_and_checkpoint(topic, tmp_path, mode):
    """cdcflow writes, delta-rs appends rows, compacts the files and writes a checkpoint, cdcflow
    resumes: each event once, delta-rs's rows kept, in upsert mode the rows delta-rs rewrote
    retired by cdcflow's updates (no key twice), the txn offsets at the high watermarks."""
    _need_binary()
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    model = su.Model(300, seed=7)
    path = tmp_path / "delta"
    log = tmp_path / "cdcflow.log"
    argv = delta_argv(topic, "scaleout-f-" + uuid.uuid4().hex[:8], path, mode,
                      "--max-offsets-per-trigger", "150")
    produce(topic, model, 300)
    produce(topic, model, ops=[{"cid": c, "op": "u"} for c in list(model.live)[:20]])
    run_drain(argv, log)
    dt = DeltaTable(str(path))
    first = dt.to_pyarrow_table()
    template = first.slice(0, 1).to_pylist()[0]
    foreign = [dict(template, customer_id=k, email="foreign%d@delta-rs.test" % k, _source_lsn=-k,
                    _pipeline_id="delta-rs") for k in FOREIGN_KEYS]
    write_deltalake(str(path), pa.Table.from_pylist(foreign, schema=first.schema), mode="append")
    before_keys = sorted(model.live)
    # delta-rs also compacts cdcflow's files into its own, then checkpoints.
    compacted = DeltaTable(str(path)).optimize.compact()
    assert compacted["numFilesRemoved"] > 0, compacted
    DeltaTable(str(path)).create_checkpoint()
    v_foreign = DeltaTable(str(path)).version()

    # Every key that existed before delta-rs rewrote the files changes again.
    produce(topic, model, ops=[{"cid": c, "op": "u" if c % 5 else "d"} for c in before_keys])
    produce(topic, model, 250)
    run_drain(argv, log)

    dt = DeltaTable(str(path))
    rows = dt.to_pyarrow_table(columns=["customer_id", "email", "_source_lsn", "_pipeline_id"]).to_pylist()
    ours = [r for r in rows if r["_pipeline_id"] != "delta-rs"]
    theirs = sorted(r["customer_id"] for r in rows if r["_pipeline_id"] == "delta-rs")
    problems = []
    if theirs != list(FOREIGN_KEYS):
        problems.append("delta-rs rows after cdcflow resumed: %s, want %s" % (theirs, list(FOREIGN_KEYS)))
    if mode == "append":
        problems += append_problems(ours, model, all_lsns(model), "delta append")
    else:
        problems += compare_state(ours, model, "delta upsert")
    wm = su.end_offsets(topic, PARTITIONS)
    problems += offsets_problems(delta_txn_history(path, topic), wm, "delta txn")
    if mode == "upsert":
        def read(v):
            h = DeltaTable(str(path), version=v).to_pyarrow_table(columns=["customer_id", "email"])
            return list(zip(h.column("customer_id").to_pylist(), h.column("email").to_pylist()))
        problems += history_problems(list(range(dt.version() + 1)), read, "delta versions")[0]
    if dt.version() <= v_foreign:
        problems.append("cdcflow committed nothing after delta-rs (version %d)" % dt.version())
    assert not problems, "\n".join(problems) + "\n" + su.tail(log)


# ---------------------------------------------------------------- Spark

def _spark_jars_or_skip():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("pyspark is not installed")
    jars = sorted(glob.glob(os.path.join(JARS_DIR, "*.jar")))
    if "iceberg-spark-runtime" not in " ".join(os.path.basename(j) for j in jars):
        pytest.skip("Spark's Iceberg runtime jar is not in %s (scripts/setup.sh fetches it)" % JARS_DIR)
    if not os.environ.get("JAVA_HOME") and os.path.isdir(JAVA_HOME):
        os.environ["JAVA_HOME"] = JAVA_HOME
    if not os.environ.get("JAVA_HOME") and not shutil.which("java"):
        pytest.skip("no JDK for Spark")
    return jars


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from test_spark_readers import local_session

    session = local_session("cdcflow-scaleout", _spark_jars_or_skip(), tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()


def spark_catalog(spark, warehouse):
    name = "ice_" + uuid.uuid4().hex[:8]
    spark.conf.set("spark.sql.catalog.%s" % name, "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set("spark.sql.catalog.%s.type" % name, "hadoop")
    spark.conf.set("spark.sql.catalog.%s.warehouse" % name, "file://" + str(warehouse))
    return name


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_iceberg_resumes_after_spark_insert_and_rewrite(topic, tmp_path, spark, mode):
    """cdcflow writes an Iceberg table, Spark (Hadoop catalog on the same warehouse) inserts rows and
    rewrites the data files, cdcflow resumes: each event once, Spark's rows kept, and in upsert mode
    cdcflow's updates retire the rows Spark rewrote."""
    _need_binary()
    model = su.Model(300, seed=11)
    warehouse = tmp_path / "warehouse"
    table_dir = str(warehouse / "ns" / "customers")
    log = tmp_path / "cdcflow.log"
    argv = iceberg_argv(topic, "scaleout-f-" + uuid.uuid4().hex[:8], warehouse, "customers", mode,
                        "--max-offsets-per-trigger", "150")
    produce(topic, model, 300)
    run_drain(argv, log)
    before_keys = sorted(model.live)

    cat = spark_catalog(spark, warehouse)
    name = "%s.ns.customers" % cat
    cols = spark.table(name).columns
    changed = {"customer_id": None, "email": None, "_source_lsn": None, "_pipeline_id": "'spark'"}
    for k in FOREIGN_KEYS:
        changed["customer_id"] = "CAST(%d AS BIGINT)" % k
        changed["email"] = "'foreign%d@spark.test'" % k
        changed["_source_lsn"] = "CAST(%d AS BIGINT)" % -k
        select = ", ".join("%s AS %s" % (changed[c], c) if c in changed else c for c in cols)
        spark.sql("INSERT INTO %s SELECT %s FROM %s LIMIT 1" % (name, select, name))
    res = spark.sql("CALL %s.system.rewrite_data_files(table => 'ns.customers', "
                    "options => map('min-input-files', '2', 'rewrite-all', 'true'))" % cat).collect()
    rewritten = res[0][0] if res else 0
    assert rewritten > 0, "Spark's rewrite_data_files rewrote nothing: %s" % res

    # More changes, touching every key that existed before Spark's rewrite.
    produce(topic, model, ops=[{"cid": c, "op": "u" if c % 5 else "d"} for c in before_keys])
    produce(topic, model, 200)
    run_drain(argv, log)

    rows = iceberg_static(table_dir).scan(
        selected_fields=("customer_id", "email", "_source_lsn", "_pipeline_id")).to_arrow().to_pylist()
    ours = [r for r in rows if r["_pipeline_id"] != "spark"]
    theirs = sorted(r["customer_id"] for r in rows if r["_pipeline_id"] == "spark")
    problems = []
    if theirs != list(FOREIGN_KEYS):
        problems.append("Spark's rows after cdcflow resumed: %s, want %s" % (theirs, list(FOREIGN_KEYS)))
    if mode == "append":
        problems += append_problems(ours, model, all_lsns(model), "iceberg append")
    else:
        problems += compare_state(ours, model, "iceberg upsert")
    con = duckdb_conn()
    try:
        n = con.execute("SELECT count(*) FROM iceberg_scan(?)", [table_dir]).fetchone()[0]
    finally:
        con.close()
    if n != len(rows):
        problems.append("DuckDB reads %d rows, pyiceberg %d" % (n, len(rows)))
    _, meta = iceberg_metadata(table_dir)
    cur = [s for s in meta["snapshots"] if s["snapshot-id"] == meta["current-snapshot-id"]][0]
    wm = su.end_offsets(topic, PARTITIONS)
    order = iceberg_snapshot_order(meta)
    ours_hist = [("seq %s" % s.get("sequence-number"), iceberg_offsets(s.get("summary", {}), topic))
                 for s in order if s.get("summary", {}).get("operation") and iceberg_offsets(s.get("summary", {}), topic)]
    problems += offsets_problems(ours_hist, wm, "iceberg snapshot offsets")
    if mode == "upsert":
        tbl = iceberg_static(table_dir)
        problems += history_problems(order, lambda s: iceberg_snapshot_rows(tbl, s), "iceberg snapshots",
                                     label=lambda s: "seq %s" % s.get("sequence-number"))[0]
    got = iceberg_offsets(cur.get("summary", {}), topic)
    if got != wm:
        problems.append("current snapshot offsets %s != high watermarks %s" % (got, wm))
    assert not problems, "\n".join(problems) + "\n" + su.tail(log)
