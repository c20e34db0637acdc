"""test_pipeline_memory.py - the memory bound and the overlapped commits on the real stack.

A burst of large change events runs under --max-memory with the process's peak RSS under the
bound and every row arriving; kill -9 while batches are committed on the commit thread and the
next ones fill leaves no duplicate and loses nothing.  Tables are read back with deltalake,
DuckDB and pyiceberg, never with cdcflow.
"""

import os
import random
import subprocess
import time

import pytest

import scaleout_util as su
from conftest import duckdb_conn
from test_scaleout import (all_lsns, append_problems, common_args, delta_checks, delta_latest_offsets,
                           iceberg_argv, iceberg_checks)

BIG_STRINGS = 3500          # bytes of strings in each event's row image
BURST = 120_000
MAX_MEMORY = 96 << 20       # the bound of the burst test: below the default, so it must bite


@pytest.fixture
def topic(stack):
    names = []

    def make(partitions):
        name = "memtest.%s.customers" % os.urandom(6).hex()
        su.create_topic(name, partitions)
        names.append(name)
        return name

    yield make
    su.delete_topics(names)


def big_image(cid, lsn, rnd):
    """A customers row with BIG_STRINGS bytes of strings, nearly all in first_name and last_name,
    which the customers transform joins into full_name: the table's rows carry them too.  The
    e-mail still names (cid, lsn)."""
    row = su.customer_image(cid, lsn, rnd)
    fill = BIG_STRINGS - sum(len(v) for k, v in row.items()
                             if isinstance(v, str) and k not in ("first_name", "last_name"))
    row["first_name"] = ("F%d " % cid).ljust(fill // 2, "y")
    row["last_name"] = ("L%d " % lsn).ljust(fill - fill // 2, "z")
    return row


def peak_rss(argv, log_path, timeout):
    """Runs argv to its end; returns (returncode, peak RSS in bytes): VmHWM of /proc/PID/status,
    read every 20 ms while it runs (it only grows, so the last reading holds the peak of all but
    the last instants).  Not the ru_maxrss of wait4: Linux carries the forking Python's RSS over
    the exec into it."""
    with open(log_path, "a") as log:
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=su.ROOT)
    hwm = 0
    deadline = time.monotonic() + timeout
    while p.poll() is None:
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]) * 1024)
        except OSError:
            pass
        if time.monotonic() > deadline:
            p.kill()
            p.wait()
            pytest.fail("cdcflow did not finish in %d s:\n%s" % (timeout, su.tail(log_path)))
        time.sleep(0.02)
    assert hwm > 0, "never read the VmHWM of cdcflow"
    return p.returncode, hwm


def test_burst_of_large_events_stays_under_the_memory_bound(topic, tmp_path):
    name = topic(1)
    model = su.Model(BURST, seed=31, image=big_image)
    su.produce_ops(name, model, [{"cid": i, "op": "c"} for i in range(1, BURST + 1)])
    table = tmp_path / "t"
    log = tmp_path / "cdcflow.log"
    argv = [su.CDCFLOW, "delta", "--mode", "append", "--table-path", str(table),
            "--max-memory", str(MAX_MEMORY), "--available-now"] + common_args(name, "memtest-" + name)
    rc, peak = peak_rss(argv, log, timeout=600)
    assert rc == 0, su.tail(log)
    print("burst of %d events of %d bytes of strings: peak RSS %.1f MiB under --max-memory %.0f MiB"
          % (BURST, BIG_STRINGS, peak / 2**20, MAX_MEMORY / 2**20))
    assert peak < MAX_MEMORY, "peak RSS %.1f MiB over the bound of %.0f MiB:\n%s" % (
        peak / 2**20, MAX_MEMORY / 2**20, su.tail(log))
    text = open(log).read()
    assert "batch:" in text
    # Every row arrived, each once: by key and by LSN, read by deltalake and DuckDB.
    from deltalake import DeltaTable
    rows = DeltaTable(str(table)).to_pyarrow_table(columns=["customer_id", "_source_lsn"]).to_pylist()
    assert sorted(r["customer_id"] for r in rows) == list(range(1, BURST + 1))
    assert append_problems(rows, model, all_lsns(model), "delta (deltalake)") == []
    con = duckdb_conn()
    try:
        n, keys, width = con.execute("SELECT count(*), count(DISTINCT customer_id), min(length(full_name)) "
                                     "FROM delta_scan(?)", [str(table)]).fetchone()
    finally:
        con.close()
    assert (n, keys) == (BURST, BURST)
    assert width >= BIG_STRINGS * 3 // 4      # the strings arrived whole
    # The bound cut the batches: many commits, none near the whole burst.
    assert delta_latest_offsets(table, name) == {0: BURST}
    assert len([f for f in os.listdir(table / "_delta_log") if f.endswith(".json")]) >= 10


def run_with_kills(argv, group, log, rnd, kills, window):
    """Starts argv `kills` times and SIGKILLs it after a random part of `window` seconds (while
    batches commit and fill), then lets one run finish with --available-now.  Each run has a group
    of its own (the group is for lag only; progress is in the table), so that it is assigned the
    partitions at once instead of after the killed one's session times out."""
    done = 0
    for life in range(kills):
        p = su.Proc("cdcflow", argv + ["--group-id", "%s-%d" % (group, life)], log)
        p.start()
        time.sleep(rnd.uniform(*window))
        if p.alive():
            p.kill()
            done += 1
        else:
            p.reap()
    assert su.run_once(argv + ["--group-id", group + "-last", "--available-now"], log, 300) == 0, su.tail(log)
    return done


@pytest.mark.parametrize("sink,mode", [("delta", "upsert"), ("delta", "append"), ("iceberg", "upsert")])
def test_kill_9_during_overlapped_commits_loses_and_duplicates_nothing(topic, tmp_path, sink, mode):
    name = topic(2)
    model = su.Model(3000, seed=41)
    su.produce_batch(name, model, 100_000)
    watermarks = su.end_offsets(name, 2)
    log = tmp_path / "cdcflow.log"
    # Small batches and a short trigger: many commits, each one overlapped with the next batch.
    extra = ["--max-offsets-per-trigger", "700", "--trigger-interval", "100ms"]
    group = "memkill-" + name
    if sink == "delta":
        table = tmp_path / "t"
        argv = [su.CDCFLOW, "delta", "--mode", mode, "--table-path", str(table)] + common_args(name, group) + extra
    else:
        wh = tmp_path / "wh"
        table = wh / "ns" / "t"
        argv = iceberg_argv(name, group, wh, "t", mode) + extra
    killed = run_with_kills(argv, group, log, random.Random(7), kills=8, window=(0.2, 0.8))
    assert killed >= 4, "killed %d times: the test proved little" % killed
    # The kills came while batches were being committed: several killed runs had committed some
    # and were killed with more to do.
    lives = open(log).read().split("==== run:")[0].split("==== cdcflow life")[1:]
    busy = [life for life in lives if "batch:" in life]
    assert len(busy) >= 3, su.tail(log)
    if sink == "delta" and mode == "upsert":
        problems, _ = delta_checks(table, name, model, watermarks)
    elif sink == "delta":
        from deltalake import DeltaTable
        rows = DeltaTable(str(table)).to_pyarrow_table(columns=["customer_id", "_source_lsn"]).to_pylist()
        problems = append_problems(rows, model, all_lsns(model), "delta append (deltalake)")
        if delta_latest_offsets(table, name) != watermarks:
            problems.append("offsets %s != %s" % (delta_latest_offsets(table, name), watermarks))
    else:
        problems, _ = iceberg_checks(str(table), name, model, watermarks)
    assert problems == [], "\n".join(problems) + "\n" + su.tail(log)
