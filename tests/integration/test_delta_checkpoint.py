"""Tables whose early JSON commits were removed by log retention: cdcflow starts from the
Parquet checkpoint (delta-rs's or its own) plus the later commits.

Checks: `cdcflow scan` of a delta-rs table checkpointed by create_checkpoint() gives deltalake's
rows; `history` says which versions are gone; `changes` refuses a start before the log; the sink
resumes at the offsets of the checkpoint and writes no event twice; optimize and vacuum work.
"""

import datetime
import json
import os

import pytest

from test_delta_sink import apply, make_events, model, run_cdcflow, write_events, assert_matches_model


def drop_json_upto(table, version):
    log = os.path.join(str(table), "_delta_log")
    for v in range(0, version + 1):
        p = os.path.join(log, "%020d.json" % v)
        if os.path.exists(p):
            os.remove(p)


def scan_rows(table, *extra):
    out = run_cdcflow("scan", table, "--format", "jsonl", *extra).stdout.splitlines()
    return [json.loads(l) for l in out]


def deltars_table(path):
    """A partitioned delta-rs table with 7 versions (appends, an overwrite of one partition, a
    delete), checkpointed at version 5 with versions 0..5 removed, then one more append."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    def batch(lo, hi, country):
        ids = list(range(lo, hi))
        return pa.table({
            "id": pa.array(ids, pa.int64()),
            "name": pa.array(["n%d" % i if i % 7 else None for i in ids], pa.string()),
            "country": pa.array([country] * len(ids), pa.string()),
            "amount": pa.array([i * 1.5 for i in ids], pa.float64()),
            "day": pa.array([datetime.date(2024, 1, 1 + i % 28) for i in ids], pa.date32()),
            "active": pa.array([i % 2 == 0 for i in ids], pa.bool_()),
        })

    write_deltalake(str(path), batch(0, 50, "US"), partition_by=["country"])          # 0
    write_deltalake(str(path), batch(50, 90, "DE"), mode="append")                     # 1
    write_deltalake(str(path), batch(90, 120, "a b/é"), mode="append")                 # 2
    write_deltalake(str(path), batch(120, 130, "US"), mode="append")                   # 3
    dt = DeltaTable(str(path))
    dt.delete("id < 10")                                                                # 4
    dt = DeltaTable(str(path))
    dt.delete("country = 'DE' and id >= 80")                                           # 5
    dt = DeltaTable(str(path))
    assert dt.version() == 5
    dt.create_checkpoint()
    assert os.path.exists(os.path.join(str(path), "_delta_log", "%020d.checkpoint.parquet" % 5))
    drop_json_upto(path, 5)
    write_deltalake(str(path), batch(200, 220, "FR"), mode="append")                   # 6
    return DeltaTable(str(path))


def key(r):
    return (r["id"], r["name"], r["country"], r["amount"], str(r["day"]), r["active"])


def test_scan_reads_deltars_checkpoint_without_early_json(tmp_path):
    table = tmp_path / "t"
    dt = deltars_table(table)
    assert dt.version() == 6
    want = sorted(key(r) for r in dt.to_pyarrow_table().to_pylist())
    got = sorted(key(r) for r in scan_rows(table))
    assert len(want) == 50 + 40 + 30 + 10 - 10 - 10 + 20 and got == want
    # time travel to the checkpoint version itself works, before it is refused
    at5 = sorted(key(r) for r in scan_rows(table, "--version", 5))
    from deltalake import DeltaTable
    assert at5 == sorted(key(r) for r in DeltaTable(str(table), version=5).to_pyarrow_table().to_pylist())
    old = run_cdcflow("scan", table, "--version", 3, check=False)
    assert old.returncode != 0 and "log starts at 6" in old.stderr


def test_history_says_which_versions_are_gone(tmp_path):
    table = tmp_path / "t"
    deltars_table(table)
    out = run_cdcflow("history", table).stdout
    assert "versions 0 to 5 are no longer listed" in out and "checkpoint 5" in out
    hist = run_cdcflow("history", table, "--format", "jsonl")
    assert [json.loads(l)["version"] for l in hist.stdout.splitlines()] == [6]
    assert "versions 0 to 5" in hist.stderr
    ch = run_cdcflow("changes", table, "--from-version", 2, check=False)
    assert ch.returncode != 0 and "no longer in the log" in ch.stderr
    later = [json.loads(l) for l in run_cdcflow("changes", table, "--from-version", 6, "--format",
                                                "jsonl").stdout.splitlines()]
    assert sorted(r["id"] for r in later) == list(range(200, 220))
    assert {(r["_change_type"], r["_commit_version"]) for r in later} == {("insert", 6)}


def test_sink_resumes_from_its_checkpoint_exactly_once(tmp_path):
    # append mode: every event is a row, so a replayed event would show as a second row
    ev = make_events(2000, 300, seed=21)
    write_events(tmp_path / "all.jsonl", ev)
    write_events(tmp_path / "first.jsonl", ev[:1200])
    table = tmp_path / "t"
    apply(table, tmp_path / "first.jsonl", mode="append", pk=None, batch=100, checkpoint_interval=5,
          partition_by="country")
    last = json.loads((table / "_delta_log" / "_last_checkpoint").read_text())
    assert last["version"] == 10
    drop_json_upto(table, 10)
    apply(table, tmp_path / "all.jsonl", mode="append", pk=None, batch=100, checkpoint_interval=5,
          partition_by="country")
    from deltalake import DeltaTable
    rows = DeltaTable(str(table)).to_pyarrow_table().to_pylist()
    assert len(rows) == len(ev)
    assert sorted((r["id"], r["name"]) for r in rows) == sorted((e["row"]["id"], e["row"]["name"]) for e in ev)
    assert len(scan_rows(table)) == len(ev)


def test_upsert_optimize_vacuum_after_log_cleanup(tmp_path):
    ev = make_events(3000, 200, seed=22)
    write_events(tmp_path / "first.jsonl", ev[:1500])
    write_events(tmp_path / "all.jsonl", ev)
    table = tmp_path / "t"
    apply(table, tmp_path / "first.jsonl", batch=100, checkpoint_interval=10)
    drop_json_upto(table, 10)
    apply(table, tmp_path / "all.jsonl", batch=100, checkpoint_interval=10)
    assert_matches_model(table, ev)
    out = run_cdcflow("optimize", table, "--target-size", 1 << 20).stdout
    assert "compacted" in out
    assert_matches_model(table, ev)
    run_cdcflow("vacuum", table, "--retain-hours", 0, "--force")
    assert_matches_model(table, ev)
    assert len(scan_rows(table)) == len(model(ev))


def test_sink_upserts_into_a_deltars_table_known_only_by_its_checkpoint(tmp_path):
    """delta-rs creates and checkpoints the table (interval 4), its JSON is removed; cdcflow upserts
    into it, writes its own checkpoints from that state, and after those JSON commits are removed
    too deltalake and `cdcflow scan` read the same rows."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    def rows(lo, hi):
        ids = list(range(lo, hi))
        ts = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
        return pa.table({"id": pa.array(ids, pa.int64()), "name": pa.array(["x%d" % i for i in ids]),
                         "country": pa.array(["US"] * len(ids)), "amount": pa.array([1.0] * len(ids)),
                         "created": pa.array([ts] * len(ids), pa.timestamp("us", tz="UTC")),
                         "active": pa.array([True] * len(ids))})

    table = str(tmp_path / "t")
    write_deltalake(table, rows(10000, 10010), partition_by=["country"],
                    configuration={"delta.checkpointInterval": "4"})
    for k in range(3):
        write_deltalake(table, rows(10010 + 10 * k, 10020 + 10 * k), mode="append")
    dt = DeltaTable(table)
    dt.create_checkpoint()
    drop_json_upto(table, dt.version())
    ev = make_events(1000, 100, seed=31)
    write_events(tmp_path / "ev.jsonl", ev)
    apply(table, tmp_path / "ev.jsonl", batch=100, partition_by="country")
    last = json.loads(open(os.path.join(table, "_delta_log", "_last_checkpoint")).read())
    assert last["version"] > 3 and last["version"] % 4 == 0   # written by cdcflow
    drop_json_upto(table, last["version"])
    got = DeltaTable(table).to_pyarrow_table().to_pylist()
    want = model(ev)
    expected = {k: r["name"] for k, r in want.items()}
    expected.update({i: "x%d" % i for i in range(10000, 10040)})
    assert len(got) == len(expected) and {r["id"]: r["name"] for r in got} == expected
    assert sorted((r["id"], r["name"]) for r in scan_rows(table)) == sorted((r["id"], r["name"]) for r in got)
