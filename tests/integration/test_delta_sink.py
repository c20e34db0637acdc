"""test_delta_sink.py - Delta tables written by cdcflow's Delta sink, read back by delta-rs
(deltalake) and DuckDB's delta extension: upsert mirrors a key-by-key model of the events,
exactly once across restarts and kill -9, soft deletes, checkpoints, and the table commands.

The sink is driven by build/bench/bench_delta (`apply`: change events from a JSON-lines file,
resuming from the offsets stored in the table), so these tests need no Kafka.  The helpers here
are shared with test_deltalake_cdc.py.
"""

import collections
import json
import os
import random
import signal
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CDCFLOW = os.environ.get("CF_CDCFLOW", os.path.join(ROOT, "build", "cdcflow"))
DRIVER = os.environ.get("CF_DELTA_DRIVER", os.path.join(ROOT, "build", "bench", "bench_delta"))

SCHEMA = "id:int64,name:string,country:string,amount:double,created:timestamp,active:boolean"


def driver():
    if not os.path.exists(DRIVER):
        subprocess.run(["make", "-j2", os.path.relpath(DRIVER, ROOT)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    return DRIVER


def write_events(path, events):
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


def apply(table, events_file, schema=SCHEMA, pk="id", mode="upsert", batch=100, partition_by=None,
          soft=False, checkpoint_interval=None, check=True, timeout=300, target_file_bytes=None):
    cmd = [driver(), "apply", "--out", str(table), "--input", str(events_file), "--schema", schema,
           "--mode", mode, "--batch", str(batch)]
    if pk:
        cmd += ["--pk", pk]
    if partition_by:
        cmd += ["--partition-by", partition_by]
    if soft:
        cmd.append("--soft-deletes")
    if checkpoint_interval:
        cmd += ["--checkpoint-interval", str(checkpoint_interval)]
    if target_file_bytes:
        cmd += ["--target-file-bytes", str(target_file_bytes)]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def make_events(n, keys, seed, p_update=0.3, p_delete=0.1, start_lsn=1000, snapshot=0):
    """Random c/u/d events over `keys` ids, LSNs increasing; the first `snapshot` are 'r' reads."""
    rnd = random.Random(seed)
    live, events, lsn = {}, [], start_lsn
    countries = ["US", "DE", "FR", "JP", "BR"]
    for i in range(n):
        lsn += rnd.randint(1, 5)
        k = rnd.randint(1, keys)
        r = rnd.random()
        row = {"id": k, "name": "n%d_%d" % (k, i), "country": countries[k % 5],
               "amount": round(rnd.random() * 1000, 2),
               "created": "2024-01-%02dT10:00:00.123456Z" % (1 + k % 28), "active": bool(i % 2)}
        if i < snapshot:
            op = "r"
        elif k in live and r < p_delete:
            op = "d"
            row = dict(live[k])
        elif k in live and r < p_delete + p_update:
            op = "u"
        else:
            op = "c"
        if op == "d":
            live.pop(k, None)
        else:
            live[k] = row
        events.append({"op": op, "lsn": lsn, "row": row})
    return events


def model(events, soft=False):
    """The table an upsert mirror must hold: last image per key, deletes removed (or marked)."""
    state = {}
    for e in events:
        k = e["row"]["id"]
        if e["op"] == "d":
            if soft:
                if k in state:
                    state[k] = dict(e["row"], _cdc_operation="DELETE")
            else:
                state.pop(k, None)
        else:
            opname = {"c": "INSERT", "u": "UPDATE", "r": "READ"}[e["op"]]
            state[k] = dict(e["row"], _cdc_operation=opname)
    return state


def read_delta(table):
    from deltalake import DeltaTable
    return DeltaTable(str(table)).to_pyarrow_table()


def rows_by_id(arrow_table, cols=("id", "name", "country", "amount", "_cdc_operation")):
    out = {}
    for r in arrow_table.select(list(cols)).to_pylist():
        assert r["id"] not in out, "duplicate key %r" % r["id"]
        out[r["id"]] = r
    return out


def assert_matches_model(table, events, soft=False):
    got = rows_by_id(read_delta(table))
    want = model(events, soft)
    assert set(got) == set(want)
    for k, w in want.items():
        g = got[k]
        assert (g["name"], g["country"], g["amount"], g["_cdc_operation"]) == \
            (w["name"], w["country"], w["amount"], w["_cdc_operation"]), k


def referenced_files(table):
    from deltalake import DeltaTable
    return set(DeltaTable(str(table)).files())


def data_files_on_disk(table):
    out = set()
    for d, _, files in os.walk(table):
        rel = os.path.relpath(d, table)
        if rel.startswith("_delta_log") or rel.startswith("_change_data"):
            continue
        for f in files:
            if f.endswith(".parquet"):
                out.add(os.path.normpath(os.path.join(rel, f)))
    return out


def run_cdcflow(*args, check=True):
    if not os.path.exists(CDCFLOW):
        pytest.fail("%s is not built (make)" % CDCFLOW)
    return subprocess.run([CDCFLOW] + [str(a) for a in args], check=check, capture_output=True, text=True)


# ------------------------------------------------------------------ tests

def test_upsert_mirrors_events(tmp_path):
    ev = make_events(5000, 800, seed=1, snapshot=300)
    write_events(tmp_path / "ev.jsonl", ev)
    apply(tmp_path / "t", tmp_path / "ev.jsonl", batch=437)
    assert_matches_model(tmp_path / "t", ev)


def test_upsert_last_event_per_key_wins_by_lsn_within_a_batch(tmp_path):
    # same key three times in one batch, out of LSN order: the highest LSN wins
    ev = [{"op": "c", "lsn": 10, "row": {"id": 1, "name": "a"}},
          {"op": "u", "lsn": 30, "row": {"id": 1, "name": "c"}},
          {"op": "u", "lsn": 20, "row": {"id": 1, "name": "b"}},
          {"op": "c", "lsn": 5, "row": {"id": 2, "name": "x"}},
          {"op": "d", "lsn": 6, "row": {"id": 2, "name": "x"}}]
    write_events(tmp_path / "ev.jsonl", ev)
    apply(tmp_path / "t", tmp_path / "ev.jsonl", batch=100)
    t = read_delta(tmp_path / "t").to_pylist()
    assert [(r["id"], r["name"]) for r in t] == [(1, "c")]


def test_snapshot_reads_and_redelivery_do_not_duplicate(tmp_path):
    ev = make_events(2000, 300, seed=2, snapshot=2000)   # all 'r' (snapshot) events
    ev = ev + [dict(e) for e in ev[:500]]                  # the snapshot delivered again
    for i, e in enumerate(ev):
        e["offset"] = i
    write_events(tmp_path / "ev.jsonl", ev)
    apply(tmp_path / "t", tmp_path / "ev.jsonl", batch=333)
    t = read_delta(tmp_path / "t")
    ids = t.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len({e["row"]["id"] for e in ev})


def test_soft_deletes_keep_marked_rows(tmp_path):
    ev = make_events(3000, 400, seed=3, p_delete=0.2)
    write_events(tmp_path / "ev.jsonl", ev)
    apply(tmp_path / "t", tmp_path / "ev.jsonl", batch=250, soft=True)
    assert_matches_model(tmp_path / "t", ev, soft=True)
    marked = [r for r in read_delta(tmp_path / "t").to_pylist() if r["_cdc_operation"] == "DELETE"]
    assert marked, "the event mix has deletes of live keys"


def test_rerun_is_exactly_once(tmp_path):
    ev = make_events(3000, 500, seed=4)
    write_events(tmp_path / "ev.jsonl", ev)
    apply(tmp_path / "t", tmp_path / "ev.jsonl", batch=200)
    from deltalake import DeltaTable
    v1 = DeltaTable(str(tmp_path / "t")).version()
    out = apply(tmp_path / "t", tmp_path / "ev.jsonl", batch=200)
    assert "skipped 3000" in out.stdout
    assert DeltaTable(str(tmp_path / "t")).version() == v1
    assert_matches_model(tmp_path / "t", ev)


def apply_with_kills(table, events_file, mode, seed=7, attempts=13, timeouts=(0.01, 0.15), extra=()):
    """Run the driver over events_file, killing it (SIGKILL) at random instants attempts - 1
    times and letting the last run finish; returns how many runs were killed."""
    rnd = random.Random(seed)
    kills = 0
    for attempt in range(attempts):
        cmd = [driver(), "apply", "--out", str(table), "--input", str(events_file),
               "--schema", SCHEMA, "--pk", "id", "--mode", mode, "--batch", "500"] + list(extra)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            p.wait(timeout=rnd.uniform(*timeouts) if attempt < attempts - 1 else 300)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            continue
        assert p.returncode == 0, p.stderr.read()
        return kills
    pytest.fail("never finished")


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_kill_9_and_restart_loses_and_duplicates_nothing(tmp_path, mode):
    ev = make_events(20000, 3000, seed=5)
    write_events(tmp_path / "ev.jsonl", ev)
    table = tmp_path / "t"
    kills = apply_with_kills(table, tmp_path / "ev.jsonl", mode)
    assert kills >= 3, "the writer was killed %d times: the test proved little" % kills
    if mode == "upsert":
        assert_matches_model(table, ev)
    else:
        t = read_delta(table)
        assert t.num_rows == len(ev)
        assert sorted(t.column("_source_lsn").to_pylist()) == sorted(e["lsn"] for e in ev)
    # files a killed writer left behind are never referenced
    assert referenced_files(table) <= data_files_on_disk(table)


def test_checkpoint_lets_readers_skip_the_json_log(tmp_path):
    ev = make_events(3000, 400, seed=8)
    write_events(tmp_path / "ev.jsonl", ev)
    table = tmp_path / "t"
    apply(table, tmp_path / "ev.jsonl", batch=100, checkpoint_interval=10)
    log = table / "_delta_log"
    last = json.loads((log / "_last_checkpoint").read_text())
    assert last["version"] % 10 == 0 and last["version"] >= 20
    assert (log / ("%020d.checkpoint.parquet" % last["version"])).exists()
    for v in range(0, last["version"] + 1):
        os.remove(log / ("%020d.json" % v))
    assert_matches_model(table, ev)
    from conftest import duckdb_conn
    con = duckdb_conn()
    assert con.sql("select count(*) from delta_scan('%s')" % table).fetchone()[0] == len(model(ev))


def test_duckdb_reads_what_deltalake_reads(tmp_path):
    ev = make_events(4000, 600, seed=9)
    write_events(tmp_path / "ev.jsonl", ev)
    table = tmp_path / "t"
    apply(table, tmp_path / "ev.jsonl", batch=300, partition_by="country")
    from conftest import duckdb_conn
    con = duckdb_conn()
    got = con.sql("select id, name, country, amount from delta_scan('%s') order by id" % table).fetchall()
    want = sorted((k, r["name"], r["country"], r["amount"]) for k, r in model(ev).items())
    assert got == want


def test_scan_history_changes_commands(tmp_path):
    ev = make_events(600, 100, seed=10)
    write_events(tmp_path / "ev.jsonl", ev)
    table = tmp_path / "t"
    apply(table, tmp_path / "ev.jsonl", batch=200)
    out = run_cdcflow("scan", table, "--format", "jsonl").stdout.splitlines()
    scanned = {json.loads(l)["id"]: json.loads(l) for l in out}
    assert set(scanned) == set(model(ev))
    hist = [json.loads(l) for l in run_cdcflow("history", table, "--format", "jsonl").stdout.splitlines()]
    assert [h["version"] for h in hist] == [2, 1, 0]
    assert all(h["operation"] == "MERGE" for h in hist)
    ch = [json.loads(l) for l in run_cdcflow("changes", table, "--from-version", 1, "--to-version", 2,
                                             "--format", "jsonl").stdout.splitlines()]
    from deltalake import DeltaTable
    ref = DeltaTable(str(table)).load_cdf(starting_version=1, ending_version=2).read_all().to_pylist()
    key = lambda r: (r["_commit_version"], r["_change_type"], r["id"], r["name"])
    assert sorted(map(key, ch)) == sorted(map(key, ref))
    # one commit time per version, the same from both readers
    import datetime
    ours_ts = {(r["_commit_version"], datetime.datetime.fromisoformat(r["_commit_timestamp"]).replace(tzinfo=None))
               for r in ch}   # delta-rs gives naive UTC
    ref_ts = {(r["_commit_version"], r["_commit_timestamp"]) for r in ref}
    assert ours_ts == ref_ts and len(ours_ts) == 2
    limited = run_cdcflow("scan", table, "--limit", 5, "--columns", "id,name", "--format", "csv").stdout
    lines = limited.splitlines()
    assert lines[0] == "id,name" and len(lines) == 6


def test_optimize_and_vacuum(tmp_path):
    ev = make_events(3000, 2000, seed=11, p_update=0.0, p_delete=0.0)
    write_events(tmp_path / "ev.jsonl", ev)
    table = tmp_path / "t"
    apply(table, tmp_path / "ev.jsonl", mode="append", pk=None, batch=100)
    from deltalake import DeltaTable
    before = len(DeltaTable(str(table)).files())
    assert before == 30
    out = run_cdcflow("optimize", table).stdout
    assert "30 files compacted into 1" in out
    dt = DeltaTable(str(table))
    assert len(dt.files()) == 1
    assert dt.to_pyarrow_table().num_rows == 3000
    # optimize is not a data change: the change feed of its version is empty
    assert dt.load_cdf(starting_version=dt.version(), ending_version=dt.version()).read_all().num_rows == 0
    # vacuum refuses a short retention unless forced, then deletes the 30 compacted files
    assert run_cdcflow("vacuum", table, "--retain-hours", 0, check=False).returncode == 2
    dry = run_cdcflow("vacuum", table, "--retain-hours", 0, "--force", "--dry-run").stdout
    assert dry.count("would delete") == 31  # 30 lines + the summary
    time.sleep(0.01)
    run_cdcflow("vacuum", table, "--retain-hours", 0, "--force")
    assert len(data_files_on_disk(table)) == 1
    assert DeltaTable(str(table)).to_pyarrow_table().num_rows == 3000


def test_upsert_continues_after_optimize(tmp_path):
    ev = make_events(6000, 900, seed=12)
    table = tmp_path / "t"
    write_events(tmp_path / "ev.jsonl", ev[:3000])
    apply(table, tmp_path / "ev.jsonl", batch=100, partition_by="country")
    from deltalake import DeltaTable
    before = len(DeltaTable(str(table)).files())
    run_cdcflow("optimize", table)
    assert len(DeltaTable(str(table)).files()) <= 5 < before
    assert_matches_model(table, ev[:3000])
    write_events(tmp_path / "ev.jsonl", ev)
    apply(table, tmp_path / "ev.jsonl", batch=100, partition_by="country")
    assert_matches_model(table, ev)


def test_upsert_rewrites_files_over_the_budget_one_row_group_at_a_time(tmp_path):
    # a 1-byte target puts every file over the merge budget: each touched file is rewritten
    # alone, row group by row group, its keys indexed one by one
    ev = make_events(4000, 500, seed=13, snapshot=500)
    write_events(tmp_path / "ev.jsonl", ev)
    apply(tmp_path / "t", tmp_path / "ev.jsonl", batch=400, target_file_bytes=1)
    assert_matches_model(tmp_path / "t", ev)
    from deltalake import DeltaTable
    feed = DeltaTable(str(tmp_path / "t")).load_cdf(starting_version=0).read_all()
    c = collections.Counter(feed.column("_change_type").to_pylist())
    assert c["insert"] - c["delete"] == len(model(ev))


def test_append_cuts_partitions_into_files_of_the_target_size(tmp_path):
    ev = make_events(30000, 5000, seed=23)
    write_events(tmp_path / "ev.jsonl", ev)
    table = tmp_path / "t"
    target = 16384
    apply(table, tmp_path / "ev.jsonl", mode="append", pk=None, batch=10000, partition_by="country",
          target_file_bytes=target)
    from deltalake import DeltaTable
    dt = DeltaTable(str(table))
    adds = dt.get_add_actions(flatten=True).to_pylist()
    # 3 commits x 5 countries would be 15 files without the target
    assert len(adds) > 30
    assert max(a["size_bytes"] for a in adds) <= 2 * target
    assert sorted(a["num_records"] for a in adds)[len(adds) // 2] > 100
    rows = dt.to_pyarrow_table()
    assert rows.num_rows == len(ev)
    assert sorted(zip(rows["id"].to_pylist(), rows["name"].to_pylist())) == \
        sorted((e["row"]["id"], e["row"]["name"]) for e in ev)
    from conftest import duckdb_conn
    con = duckdb_conn()
    assert con.sql("select count(*) from delta_scan('%s')" % table).fetchone()[0] == len(ev)


@pytest.mark.parametrize("cmd,iceberg_opts", [
    ("scan", ["--snapshot ID", "--version N", "--timestamp T", "vN.metadata.json"]),
    ("history", ["Iceberg", "--format and --limit apply"]),
    ("optimize", ["Iceberg", "--target-size", "--min-files", "position delete"]),
])
def test_table_command_help_covers_iceberg(cmd, iceberg_opts):
    out = run_cdcflow(cmd, "--help").stdout
    assert out.startswith("Usage: cdcflow %s TABLE" % cmd)
    tail = out[out.index("Iceberg tables"):]
    for o in iceberg_opts:
        assert o in tail, (cmd, o)
