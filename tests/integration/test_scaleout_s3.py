"""test_scaleout_s3.py - cdcflow scaled out on object storage, and S3 failing under it.

Test 1 is test_scaleout.py's churn on the stack's S3: three cdcflow processes per sink in one
consumer group on a fresh 3-partition topic, a Delta table on S3 (commits ordered by If-None-Match)
and an Iceberg table through the REST catalog (commits ordered by the catalog's 409), while a
producer keeps changing 1,000 keys and a schedule SIGKILLs (mostly), SIGTERMs and restarts them.
After a drain (--available-now) the tables are judged from the outside, as in test_scaleout.py
(final state, no key twice at any version, Delta change feed, stored offsets), plus what object
storage adds: lost races were really retried, and no object a reader can see is partial - every
file the Delta log and the Iceberg manifests name reads whole, and nothing but hidden names
('.'-prefixed) looks like a temporary.

Test 2 runs its own S3 server (scripts/s3_server.py on a free loopback port) so it can hurt it:
it SIGSTOPs the server for 20 s under a streaming Delta pipeline, and SIGKILLs cdcflow in the
middle of a multipart upload of a data file above the 8 MiB part size; both times nothing may be
lost or applied twice.

CHAOS_S3_SECONDS (default 60) is how long the churn lasts; SCALEOUT_SEED changes the schedule.
"""

import collections
import concurrent.futures
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scaleout_util as su  # noqa: E402
import test_scaleout as ts  # noqa: E402
from conftest import duckdb_conn  # noqa: E402
from objstore import (ACCESS_KEY, CATALOG_URI, REGION, S3_BUCKET, SECRET_KEY, cdcflow_env,  # noqa: E402
                      delete_prefix, delta_storage_options, delta_table, download_prefix, duckdb_s3, list_keys,
                      require_servers, s3_client)

CHAOS_SECONDS = float(os.environ.get("CHAOS_S3_SECONDS", "60"))
SEED = ts.SEED
NKEYS = 1000
PARTITIONS = 3
RATE = 60                    # events per second during the churn
TRIGGER_S = 1.0              # --trigger-interval of the churning processes
DELTA_VERSION_CHECKS = 40    # Delta versions read back one by one over S3, at most
ICEBERG_SNAPSHOT_CHECKS = 40  # Iceberg snapshots read back with DuckDB httpfs, at most
PYICEBERG_SNAPSHOT_CHECKS = 6
PART_SIZE = 8 << 20          # cdcflow's multipart part size (src/store/s3.c DEFAULT_PART; no flag sets it)
S3_SERVER = os.path.join(su.ROOT, "scripts", "s3_server.py")

# What a lost race looks like in cdcflow's log (src/table/table.c logs each failed attempt at debug).
ATTEMPT_RE = re.compile(r" DEBUG table: (\S+): commit attempt (\d+): (.*)$")


def _need_binary():
    if not os.access(su.CDCFLOW, os.X_OK):
        pytest.fail("%s is not built (make -j2)" % su.CDCFLOW)


@pytest.fixture
def topic(stack):
    name = "scaleout-s3.%s.customers" % uuid.uuid4().hex[:12]
    su.create_topic(name, PARTITIONS)
    yield name
    su.delete_topics([name])


@pytest.fixture
def place():
    """(key prefix, Iceberg namespace) unique to the test in the stack's bucket and catalog; the
    objects and the catalog's table are removed afterwards."""
    require_servers()
    tag = uuid.uuid4().hex[:10]
    prefix, ns = "it-scaleout-%s" % tag, "scaleout_%s" % tag
    yield prefix, ns
    try:
        cat = rest_catalog()
        for t in cat.list_tables(ns):
            cat.drop_table(t)
        cat.drop_namespace(ns)
    except Exception:  # noqa: BLE001 - cleanup only
        pass
    delete_prefix(prefix + "/")


def rest_catalog():
    from objstore import rest_catalog as rc

    return rc()


# ------------------------------------------------------------------ readers of object storage (not cdcflow)

def s3_delta_log(client, bucket):
    """A log_commits for test_scaleout.delta_txn_history / delta_checks: [(version, [actions])] of
    the JSON commits of the Delta table at s3://bucket/..., read with boto3."""
    def read(url):
        prefix = url.split("://", 1)[1].split("/", 1)[1].rstrip("/") + "/_delta_log/"
        out = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                base = o["Key"][len(prefix):]
                if not (base.endswith(".json") and base[:-5].isdigit()):
                    continue
                body = client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode()
                out.append((int(base[:-5]), [json.loads(line) for line in body.splitlines() if line.strip()]))
        return sorted(out, key=lambda c: c[0])
    return read


def get_bytes(client, url):
    bucket, key = url.split("://", 1)[1].split("/", 1)
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def whole_objects_problems(client, bucket, prefix, what):
    """Every object a listing of prefix shows, hidden names ('.'-prefixed) aside, must be whole:
    no temporary-looking name, Parquet with both magics and a footer pyarrow reads, Avro with its
    header, JSON that parses.  Returns (problems, {suffix: count})."""
    import pyarrow.parquet as pq

    problems, kinds, bad = [], collections.Counter(), []
    tmpish = re.compile(r"(\.tmp|\.temp|\.part|\.partial|\.inprogress|~)$|/_tmp|\.tmp\.", re.I)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            key = o["Key"]
            if any(part.startswith(".") for part in key[len(prefix):].split("/")):
                kinds["hidden"] += 1
                continue
            if tmpish.search(key):
                bad.append((key, "temporary name"))
                continue
            ext = key.rsplit(".", 1)[-1] if "." in key.rsplit("/", 1)[-1] else "(none)"
            kinds[ext] += 1
            if ext not in ("parquet", "avro", "json", "(none)", "checkpoint", "text"):
                continue
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                if ext == "parquet":
                    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
                        raise ValueError("no PAR1 magic at both ends (%d bytes)" % len(data))
                    pq.ParquetFile(io.BytesIO(data)).metadata
                elif ext == "avro":
                    if data[:4] != b"Obj\x01":
                        raise ValueError("no Avro header")
                elif ext == "json":
                    if key.rsplit("/", 2)[-2] == "_delta_log":
                        [json.loads(line) for line in data.decode().splitlines() if line.strip()]
                    else:
                        json.loads(data)
                elif key.endswith("_last_checkpoint"):
                    json.loads(data)
            except Exception as e:  # noqa: BLE001 - the object is reported
                bad.append((key, str(e)[:120]))
    if bad:
        problems.append("%s: %d listed objects are not whole (key, why): %s" % (what, len(bad), bad[:6]))
    return problems, dict(kinds)


def delta_files_problems(dt, client, what):
    """Every data file the Delta table's current version names exists and reads whole, with the
    row count its add action records."""
    import pyarrow.parquet as pq

    adds = dt.get_add_actions(flatten=True).to_pylist()
    root = dt.table_uri.rstrip("/")
    bad = []
    for a in adds:
        url = a["path"] if "://" in a["path"] else root + "/" + a["path"]
        try:
            n = pq.read_table(io.BytesIO(get_bytes(client, url))).num_rows
            if a.get("num_records") is not None and n != a["num_records"]:
                bad.append((a["path"], "%d rows, the log says %d" % (n, a["num_records"])))
        except Exception as e:  # noqa: BLE001
            bad.append((a["path"], str(e)[:120]))
    problems = []
    if bad:
        problems.append("%s: %d of the %d files the log names do not read whole: %s" % (what, len(bad), len(adds), bad[:5]))
    return problems, len(adds)


def iceberg_files_problems(tbl, client, what):
    """Every manifest list, manifest and data/delete file the current snapshot names reads whole,
    with the record count its manifest entry holds."""
    import pyarrow.parquet as pq

    bad, nfiles = [], 0
    snap = tbl.current_snapshot()
    try:
        if get_bytes(client, snap.manifest_list)[:4] != b"Obj\x01":
            bad.append((snap.manifest_list, "no Avro header"))
    except Exception as e:  # noqa: BLE001
        bad.append((snap.manifest_list, str(e)[:120]))
    for m in snap.manifests(tbl.io):
        try:
            if get_bytes(client, m.manifest_path)[:4] != b"Obj\x01":
                bad.append((m.manifest_path, "no Avro header"))
        except Exception as e:  # noqa: BLE001
            bad.append((m.manifest_path, str(e)[:120]))
    for f in tbl.inspect.files().select(["file_path", "record_count"]).to_pylist():
        nfiles += 1
        try:
            n = pq.read_table(io.BytesIO(get_bytes(client, f["file_path"]))).num_rows
            if n != f["record_count"]:
                bad.append((f["file_path"], "%d rows, the manifest says %d" % (n, f["record_count"])))
        except Exception as e:  # noqa: BLE001
            bad.append((f["file_path"], str(e)[:120]))
    problems = []
    if bad:
        problems.append("%s: %d files the current snapshot names do not read whole: %s" % (what, len(bad), bad[:5]))
    return problems, nfiles


def iceberg_meta(tbl):
    """The table's metadata as its JSON (Iceberg field names), for test_scaleout's readers."""
    meta = json.loads(tbl.metadata.model_dump_json())
    # pyiceberg's Summary serialises as {"operation", **properties}; keep that flat form.
    for s in meta.get("snapshots", []):
        snap = tbl.metadata.snapshot_by_id(s["snapshot-id"])
        if snap is not None and snap.summary is not None:
            s["summary"] = dict(snap.summary.additional_properties, operation=snap.summary.operation.value)
    return meta


def iceberg_rest_checks(ns, topic, model, watermarks):
    """test_scaleout.iceberg_checks for a table behind the REST catalog: final state with pyiceberg,
    sampled snapshots with DuckDB httpfs (and a few with pyiceberg), snapshot offsets."""
    problems, figures = [], {}
    tbl = rest_catalog().load_table("%s.customers" % ns)
    cols = ("customer_id", "email", "_source_lsn")
    problems += ts.compare_state(tbl.scan(selected_fields=cols).to_arrow().to_pylist(), model,
                                 "iceberg final (pyiceberg RestCatalog)")
    meta = iceberg_meta(tbl)
    order = ts.iceberg_snapshot_order(meta)
    figures["iceberg_snapshots"] = len(order)
    con = duckdb_s3(duckdb_conn())
    try:
        drows = con.execute("SELECT customer_id, email, _source_lsn FROM iceberg_scan(?)",
                            [tbl.metadata_location]).fetchall()
        problems += ts.compare_state([dict(zip(cols, r)) for r in drows], model, "iceberg final (DuckDB httpfs)")

        def ddb_rows(s):
            return con.execute("SELECT customer_id, email FROM iceberg_scan(?, snapshot_from_id=?)",
                               [tbl.metadata_location, s["snapshot-id"]]).fetchall()

        p, figures["iceberg_snapshots_checked"] = ts.history_problems(
            ts.sample(order, ICEBERG_SNAPSHOT_CHECKS), ddb_rows, "iceberg snapshots (DuckDB httpfs)",
            label=lambda s: "seq %s" % s.get("sequence-number"))
        problems += p
    finally:
        con.close()

    def py_rows(s):
        t = tbl.scan(snapshot_id=s["snapshot-id"], selected_fields=("customer_id", "email")).to_arrow()
        return list(zip(t.column("customer_id").to_pylist(), t.column("email").to_pylist()))

    p, figures["iceberg_snapshots_checked_pyiceberg"] = ts.history_problems(
        ts.sample(order, PYICEBERG_SNAPSHOT_CHECKS), py_rows, "iceberg snapshots (pyiceberg)",
        label=lambda s: "seq %s" % s.get("sequence-number"))
    problems += p
    hist = [(s.get("sequence-number"), ts.iceberg_offsets(s.get("summary", {}), topic)) for s in order]
    no_offsets = [sq for sq, o in hist if not o]
    if no_offsets:
        problems.append("iceberg: %d snapshots of cdcflow carry no offsets: %s" % (len(no_offsets), no_offsets[:5]))
    problems += ts.offsets_problems([h for h in hist if h[1]], watermarks, "iceberg snapshot offsets")
    cur = tbl.current_snapshot()
    got = ts.iceberg_offsets(dict(cur.summary.additional_properties), topic) if cur else {}
    if got != watermarks:
        problems.append("iceberg: current snapshot offsets %s != high watermarks %s" % (got, watermarks))
    return problems, figures, tbl


def retried_commits(log_paths):
    """{kind: count} of the failed commit attempts cdcflow logged (and then retried): lost Delta
    races (If-None-Match refused; published again on top, or staged anew because the winner wrote
    a key of the batch), Iceberg catalog 409s (and, after one, files written anew), other."""
    kinds = collections.Counter()
    for path in log_paths:
        with open(path, errors="replace") as f:
            for line in f:
                m = ATTEMPT_RE.search(line)
                if not m:
                    continue
                msg = m.group(3)
                if "version taken by another writer" in msg:
                    kinds["delta_412_republished"] += 1
                elif "another writer wrote a key of this batch" in msg:
                    kinds["delta_412_restaged"] += 1
                elif "conflict (" in msg:
                    kinds["iceberg_409"] += 1
                elif "another writer" in msg:
                    kinds["restaged"] += 1
                else:
                    kinds["other"] += 1
    return dict(kinds)


def count_lines(log_paths, needle):
    n = 0
    for path in log_paths:
        with open(path, errors="replace") as f:
            n += sum(needle in line for line in f)
    return n


# ------------------------------------------------------------------ test 1: many writers on S3

def s3_schedule(rnd, sink, nslots, seconds):
    """[(t, sink, slot, action, arg)] for test_scaleout.run_chaos: quick staggered starts (object
    storage commits are slow enough that every process soon has uploads in flight), then every 3-6 s
    one slot of those up (while another stays up) is SIGKILLed (mostly), SIGTERMed or paused shortly,
    and restarted after arg s."""
    ev = [(0.0, sink, 0, "start", None), (rnd.uniform(1, 3), sink, 1, "start", None),
          (rnd.uniform(3, 6), sink, 2, "start", None)]
    free_at = [e[0] for e in ev]
    t = 9.0
    while True:
        t += rnd.uniform(3, 6)
        if t > seconds - 6:
            break
        up = [s for s in range(nslots) if free_at[s] <= t]
        if len(up) < 2:
            continue
        slot = rnd.choice(up)
        what = rnd.choices(["kill", "term", "pause"], weights=[6, 3, 1])[0]
        d = rnd.uniform(0.5, 3) if what != "pause" else rnd.uniform(1, ts.SESSION_TIMEOUT_MS / 1000 - 2)
        ev.append((t, sink, slot, what, round(d, 1)))
        free_at[slot] = t + d + 2
    return ev


class AimedProc(su.Proc):
    """A cdcflow process whose SIGKILL aims at its uploads and commit: it waits (at most 3 s) for the
    process's next commit line, then for the trigger interval plus 20-300 ms, when the following
    batch's files are being written (aim=False: at once).  `aimed` counts the kills that found
    their moment."""

    def __init__(self, *a, rnd=None, **kw):
        super().__init__(*a, **kw)
        self.rnd = rnd or random.Random(0)
        self.aim, self.aimed = True, 0

    def _commits(self):
        with open(self.log_path, errors="replace") as f:
            return sum(" batch: " in line for line in f)

    def kill(self):
        if self.aim and self.alive() and not self.stopped:
            n = self._commits()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and self._commits() == n and self.alive():
                time.sleep(0.02)
            if self._commits() > n:
                time.sleep(TRIGGER_S + self.rnd.uniform(0.02, 0.3))
                self.aimed += 1
        super().kill()


def stop_all(procs):
    """SIGTERM every process at once (SIGCONT first if paused) and wait for each: a clean stop commits
    the batch in flight, which on S3 takes a while."""
    with concurrent.futures.ThreadPoolExecutor(len(procs)) as ex:
        list(ex.map(lambda p: p.terminate(timeout=40), procs))


def test_chaos_three_processes_per_sink_on_object_storage(topic, place, tmp_path):
    """Three cdcflow processes per sink, Delta on S3 and Iceberg through the REST catalog, SIGKILLed,
    SIGTERMed and restarted while 1,000 keys churn: both tables end (and stay at every version
    sampled) an exact mirror, lost races were retried, and no object a reader sees is partial."""
    _need_binary()
    prefix, ns = place
    rnd = random.Random(SEED)
    model = su.Model(NKEYS, seed=SEED)
    p0 = su.producer()
    for cid in range(1, NKEYS + 1):
        k, v, *_ = model.event(cid=cid, op="c")
        p0.produce(topic, key=k, value=v)
        p0.poll(0)
    assert p0.flush(60) == 0

    delta_url = "s3://%s/%s/delta/customers" % (S3_BUCKET, prefix)
    warehouse = "s3://%s/%s/wh" % (S3_BUCKET, prefix)
    gid = uuid.uuid4().hex[:8]
    groups = {"delta": "scaleout-s3-delta-" + gid, "iceberg": "scaleout-s3-iceberg-" + gid}
    batch = ["--trigger-interval", "%dms" % (TRIGGER_S * 1000), "--max-offsets-per-trigger", "300",
             "--log-level", "debug"]
    argv = {"delta": ts.delta_argv(topic, groups["delta"], delta_url, "upsert", *batch),
            "iceberg": ts.iceberg_argv(topic, groups["iceberg"], warehouse, "customers", "upsert", *batch,
                                       "--catalog-uri", CATALOG_URI)}
    argv["iceberg"][argv["iceberg"].index("--namespace") + 1] = ns
    env = cdcflow_env()
    env.pop("ICEBERG_CATALOG_URI", None)
    kill_rnd = random.Random(rnd.random())
    procs = {(sink, i): AimedProc("%s-%d" % (sink, i), argv[sink], tmp_path / ("%s-%d.log" % (sink, i)), env=env,
                                  rnd=kill_rnd)
             for sink in argv for i in range(3)}
    schedule = s3_schedule(random.Random(rnd.random()), "delta", 3, CHAOS_SECONDS) + \
        s3_schedule(random.Random(rnd.random()), "iceberg", 3, CHAOS_SECONDS)
    sched_log = open(tmp_path / "schedule.log", "w")
    sched_log.write("seed %d, topic %s, delta %s, iceberg %s.customers, %d s, planned:\n"
                    % (SEED, topic, delta_url, ns, CHAOS_SECONDS))
    for e in sorted(schedule):
        sched_log.write("  %7.1fs %-7s slot %d %s %s\n" % (e[0], e[1], e[2], e[3], "" if e[4] is None else e[4]))
    sched_log.write("applied:\n")
    sched_log.flush()

    prod = su.ProducerThread(topic, model, RATE)
    problems, figures = [], {}
    drains = {}
    try:
        prod.start()
        ts.run_chaos(procs, schedule, CHAOS_SECONDS, sched_log)
        prod.stop()
        for p in procs.values():
            p.aim = False
        figures["kills_aimed_at_a_commit"] = sum(p.aimed for p in procs.values())
        figures["events"] = NKEYS + prod.produced
        figures["ops"] = dict(model.count)
        figures["live_keys"], figures["deleted_keys"] = len(model.live), len(model.gone)
        stop_all(list(procs.values()))
        figures["signals"] = dict(collections.Counter(
            "%s-%s" % (e[1], e[3]) for e in schedule if e[3] in ("kill", "term", "pause")))
        # Killed by SIGTERM itself (-15): the signal came while the process was still opening its
        # table, before cdcflow installs its handlers (on S3 that takes seconds).  Nothing is lost -
        # no batch exists yet - so it is counted, not failed; any other non-zero exit fails.
        exits = [(p.name, rc, how) for p in procs.values() for rc, how in p.exits
                 if how in ("sigterm", "exited", "sigterm-timeout-kill") and rc != 0]
        figures["sigterm_while_opening"] = sum(rc == -signal.SIGTERM for _, rc, _ in exits)
        crashed = [e for e in exits if e[1] != -signal.SIGTERM]
        if crashed:
            errors = []
            for p in procs.values():
                with open(p.log_path, errors="replace") as f:
                    errors += [line.strip()[:300] for line in f if " ERROR " in line]
            problems.append("%d process exits with a non-zero status, on their own or after SIGTERM "
                            "(name, status, how): %s; their ERROR lines: %s" % (len(crashed), crashed, errors[-4:]))
        watermarks = su.end_offsets(topic, PARTITIONS)
        figures["watermarks"] = watermarks

        for sink in argv:
            ts.wait_group_empty(groups[sink])
            drains[sink] = subprocess.Popen(argv[sink] + ["--available-now"],
                                            stdout=open(tmp_path / ("%s-drain.log" % sink), "w"),
                                            stderr=subprocess.STDOUT, cwd=su.ROOT, env=env)
        for sink, d in drains.items():
            try:
                rc = d.wait(120)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait(10)
                rc = "timeout"
            if rc != 0:
                problems.append("%s drain (--available-now) exited %s" % (sink, rc))

        logs = {sink: [str(tmp_path / ("%s-%d.log" % (sink, i))) for i in range(3)] +
                [str(tmp_path / ("%s-drain.log" % sink))] for sink in argv}
        for sink in argv:
            figures["%s_batches" % sink] = count_lines(logs[sink], " batch: ")
            figures["%s_retried" % sink] = retried_commits(logs[sink])
            figures["%s_fenced" % sink] = count_lines(logs[sink], "another writer owns the partition")
            if not figures["%s_retried" % sink]:
                problems.append("%s: no commit attempt was logged as lost and retried: three writers never "
                                "raced, so the test proved nothing about conflicts" % sink)

        client = s3_client()
        dp, df = ts.delta_checks(
            delta_url, topic, model, watermarks, storage_options=delta_storage_options(),
            log_commits=s3_delta_log(client, S3_BUCKET), duckdb_connect=lambda: duckdb_s3(duckdb_conn()),
            max_checks=DELTA_VERSION_CHECKS)
        problems += dp
        figures.update(df)
        p, figures["delta_live_files"] = delta_files_problems(delta_table(delta_url), client, "delta files")
        problems += p
        # Data files no version ever named: uploads a SIGKILL cut off from their commit.
        named = {a["add"]["path"] for _, acts in s3_delta_log(client, S3_BUCKET)(delta_url) for a in acts if "add" in a}
        table_prefix = "%s/delta/customers/" % prefix
        figures["delta_files_never_committed"] = len(
            {k[len(table_prefix):] for k in list_keys(table_prefix) if k.rsplit("/", 1)[-1].startswith("part-")} - named)
        p, figures["delta_listing"] = whole_objects_problems(client, S3_BUCKET, prefix + "/delta/", "delta listing")
        problems += p

        ip, ifg, tbl = iceberg_rest_checks(ns, topic, model, watermarks)
        problems += ip
        figures.update(ifg)
        p, figures["iceberg_live_files"] = iceberg_files_problems(tbl, client, "iceberg files")
        problems += p
        live = {f for f in tbl.inspect.files().column("file_path").to_pylist()}
        figures["iceberg_files_not_in_current_snapshot"] = len(
            {"s3://%s/%s" % (S3_BUCKET, k) for k in list_keys(prefix + "/wh/") if k.endswith(".parquet")} - live)
        p, figures["iceberg_listing"] = whole_objects_problems(client, S3_BUCKET, prefix + "/wh/", "iceberg listing")
        problems += p
    finally:
        for p in procs.values():
            p.aim = False
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

    print("s3 chaos figures: %s" % figures)
    print(open(tmp_path / "schedule.log").read())
    if problems:
        # The bucket's objects go with the fixture: keep a copy of the Delta table to look into.
        download_prefix(prefix + "/delta/customers", str(tmp_path / "delta-table"))
        tails = "\n".join("---- %s\n%s" % (n, su.tail(str(tmp_path / n), 25))
                          for n in sorted(os.listdir(tmp_path)) if n.endswith(".log") and n != "schedule.log")
        pytest.fail("exactly-once violated on object storage (%s):\n  %s\n\nschedule and logs in %s\n%s"
                    % (figures, "\n  ".join(problems), tmp_path, tails), pytrace=False)


# ------------------------------------------------------------------ test 2: S3 failing under cdcflow

class PrivateS3:
    """scripts/s3_server.py on a free loopback port, for this module alone: it can be stopped."""

    def __init__(self, proc, endpoint, log_path):
        self.proc, self.endpoint, self.log_path = proc, endpoint, log_path

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def client(self):
        return s3_client(self.endpoint)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def private_s3(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("private-s3") / "s3_server.log"
    port = free_port()
    endpoint = "http://127.0.0.1:%d" % port
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, S3_SERVER, "--host", "127.0.0.1", "--port", str(port),
                             "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--region", REGION],
                            stdout=log, stderr=subprocess.STDOUT, cwd=su.ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                s3_client(endpoint).create_bucket(Bucket=S3_BUCKET)
                break
            except Exception as e:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("private S3 server on %s did not come up (%s): %s" % (endpoint, e, su.tail(log_path)))
                time.sleep(0.3)
        yield PrivateS3(proc, endpoint, log_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


@pytest.fixture
def topic1(stack):
    name = "scaleout-s3f.%s.customers" % uuid.uuid4().hex[:12]
    su.create_topic(name, 1)
    yield name
    su.delete_topics([name])


def private_delta_checks(s3, url, topic, model, max_checks=25):
    """test_scaleout.delta_checks on the private server, plus the whole-objects listing check."""
    watermarks = su.end_offsets(topic, 1)
    problems, figures = ts.delta_checks(
        url, topic, model, watermarks, storage_options=delta_storage_options(s3.endpoint),
        log_commits=s3_delta_log(s3.client(), S3_BUCKET),
        duckdb_connect=lambda: duckdb_s3(duckdb_conn(), s3.endpoint), max_checks=max_checks)
    figures["watermarks"] = watermarks
    prefix = url.split("/", 3)[3] + "/"
    p, figures["listing"] = whole_objects_problems(s3.client(), S3_BUCKET, prefix, "listing")
    problems += p
    p, figures["live_files"] = delta_files_problems(
        delta_table_at(s3, url), s3.client(), "delta files")
    problems += p
    return problems, figures


def delta_table_at(s3, url):
    from deltalake import DeltaTable

    return DeltaTable(url, storage_options=delta_storage_options(s3.endpoint))


def log_lines(path, needle):
    with open(path, errors="replace") as f:
        return [line.rstrip("\n") for line in f if needle in line]


def wait_for(cond, timeout, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def test_s3_server_stopped_for_20s_under_a_streaming_pipeline(private_s3, topic1, tmp_path):
    """SIGSTOP the S3 server for 20 s while cdcflow streams into it: cdcflow either waits and goes
    on, or stops with one line naming S3 and goes on after a restart; either way the table ends
    an exact mirror (nothing lost, nothing applied twice)."""
    _need_binary()
    topic = topic1
    model = su.Model(300, seed=SEED + 1)
    su.produce_ops(topic, model, [{"cid": c, "op": "c"} for c in range(1, 301)])
    url = "s3://%s/stall-%s/customers" % (S3_BUCKET, uuid.uuid4().hex[:8])
    env = cdcflow_env(AWS_ENDPOINT_URL_S3=private_s3.endpoint)
    log = tmp_path / "delta.log"
    argv = ts.delta_argv(topic, "scaleout-s3-stall-" + uuid.uuid4().hex[:8], url, "upsert",
                         "--trigger-interval", "500ms", "--max-offsets-per-trigger", "200")
    proc = su.Proc("delta", argv, log, env=env)
    prod = su.ProducerThread(topic, model, 40)
    outcome, figures = None, {}

    def batches():
        return len(log_lines(log, " batch: "))

    try:
        proc.start()
        prod.start()
        assert wait_for(lambda: batches() >= 3, 60), "no three commits before the stall:\n" + su.tail(log)
        at_stop = batches()
        private_s3.pause()
        t0 = time.monotonic()
        exited_at = None
        try:
            while time.monotonic() - t0 < 20:
                if exited_at is None and not proc.alive():
                    exited_at = time.monotonic() - t0
                time.sleep(0.2)
        finally:
            private_s3.resume()
        figures["commits_during_stall"] = batches() - at_stop
        t1 = time.monotonic()
        # After SIGCONT: a new commit (it waited), or an exit (it gave up, maybe only now).
        assert wait_for(lambda: batches() > at_stop + figures["commits_during_stall"] or not proc.alive(), 90), \
            "neither a commit nor an exit 90 s after the S3 server came back:\n" + su.tail(log)
        if proc.alive():
            outcome = "waited and resumed"
            figures["first_commit_after_resume_s"] = round(time.monotonic() - t1, 1)
        else:
            proc.reap()
            rc = proc.p.returncode
            if exited_at is None:
                exited_at = 20 + time.monotonic() - t1
            errors = log_lines(log, " ERROR ")
            assert rc == 1 and errors, "cdcflow exited %s without an ERROR line:\n%s" % (rc, su.tail(log))
            last = errors[-1]
            assert re.search(r"\bs3\b|S3", last), "the error does not name S3: %s" % last
            outcome = "stopped after %.1f s with: %s; resumed on restart" % (exited_at, last.split(" ERROR ", 1)[1])
            figures["errors"] = len(errors)
            before = batches()
            proc.start()
            assert wait_for(lambda: batches() > before, 60), "no commit after the restart:\n" + su.tail(log)
        time.sleep(3)
        prod.stop()
        rc = proc.terminate(timeout=40)
        assert rc == 0, "SIGTERM: cdcflow exited %s:\n%s" % (rc, su.tail(log))
        rc = su.run_once(argv + ["--available-now"], log, 120, env=env)
        assert rc == 0, "drain exited %s:\n%s" % (rc, su.tail(log))
        figures["events"] = 300 + prod.produced
        figures["commits"] = batches()
        problems, f = private_delta_checks(private_s3, url, topic, model)
        figures.update(f)
    finally:
        if proc.alive():
            proc.kill()
        prod._halt.set()
        prod.join(30)
    print("S3 server stopped for 20 s: %s" % outcome)
    print("stall figures: %s" % figures)
    assert not problems, "after the S3 stall (%s):\n  %s\n%s" % (outcome, "\n  ".join(problems), su.tail(log))


def padded_image(cid, lsn, rnd):
    """A customers row carrying 10 kB of incompressible text in first_name (the customers transform
    keeps it, in full_name), so that a few thousand rows make a data file of several multipart parts."""
    import base64

    img = su.customer_image(cid, lsn, rnd)
    return dict(img, first_name=img["first_name"] + base64.b64encode(rnd.randbytes(7500)).decode())


def test_kill_during_multipart_upload_leaves_nothing_visible(private_s3, topic1, tmp_path):
    """SIGKILL cdcflow while a data file of several 8 MiB parts is being uploaded: the listing shows no
    object of it (the incomplete upload stays, invisible, for the lifecycle rule), nothing listed is
    partial, and a restart commits the whole batch once."""
    _need_binary()
    topic = topic1
    nkeys = 2500
    model = su.Model(nkeys, seed=SEED + 2, image=padded_image)
    su.produce_ops(topic, model, [{"cid": c, "op": "c"} for c in range(1, nkeys + 1)] + [{}] * 300)
    prefix = "mpu-%s/customers" % uuid.uuid4().hex[:8]
    url = "s3://%s/%s" % (S3_BUCKET, prefix)
    env = cdcflow_env(AWS_ENDPOINT_URL_S3=private_s3.endpoint)
    log = tmp_path / "delta.log"
    argv = ts.delta_argv(topic, "scaleout-s3-mpu-" + uuid.uuid4().hex[:8], url, "upsert",
                         "--trigger-interval", "5m", "--max-offsets-per-trigger", "1000000", "--available-now")
    client = private_s3.client()
    proc = su.Proc("delta", argv, log, env=env)
    figures = {}

    def uploads():
        return client.list_multipart_uploads(Bucket=S3_BUCKET, Prefix=prefix + "/").get("Uploads", [])

    try:
        proc.start()
        seen = wait_for(lambda: uploads() or not proc.alive(), 120, step=0.02)
        assert seen and proc.alive(), ("no multipart upload was seen before cdcflow ended (exit %s): the data "
                                       "files did not exceed the part size?\n%s" % (proc.p.poll(), su.tail(log)))
        proc.kill()
        figures["killed_during"] = [u["Key"][len(prefix) + 1:] for u in seen]
        figures["parts_uploaded_at_kill"] = {
            u["Key"][len(prefix) + 1:]: len(client.list_parts(Bucket=S3_BUCKET, Key=u["Key"], UploadId=u["UploadId"])
                                            .get("Parts", [])) for u in uploads()}
        left = {u["Key"] for u in uploads()}
        listed = set(list_keys(prefix + "/", private_s3.endpoint))
        problems = []
        if not left:
            problems.append("the upload seen in flight had completed when cdcflow was killed (kill too late)")
        visible = sorted(k for k in left if k in listed)
        if visible:
            problems.append("objects of incomplete uploads are listed: %s" % visible)
        p, figures["listing_after_kill"] = whole_objects_problems(client, S3_BUCKET, prefix + "/", "listing after kill")
        problems += p
        commits = [k for k in listed if re.search(r"/_delta_log/\d{20}\.json$", k)]
        figures["commits_before_restart"] = len(commits)

        rc = su.run_once(argv, log, 180, env=env)
        assert rc == 0, "restart exited %s:\n%s" % (rc, su.tail(log))
        p, f = private_delta_checks(private_s3, url, topic, model, max_checks=10)
        problems += p
        figures.update(f)
        sizes = [a["size_bytes"] for a in delta_table_at(private_s3, url).get_add_actions(flatten=True).to_pylist()]
        figures["largest_data_file_mib"] = round(max(sizes) / 2 ** 20, 1)
        if max(sizes) <= PART_SIZE:
            problems.append("the committed data files (largest %d bytes) are not above the %d-byte part size: no "
                            "multipart upload completed" % (max(sizes), PART_SIZE))
        figures["incomplete_uploads_left"] = len(uploads())
    finally:
        if proc.alive():
            proc.kill()
    print("multipart kill figures: %s" % figures)
    assert not problems, "\n  ".join(problems) + "\n" + su.tail(log)
