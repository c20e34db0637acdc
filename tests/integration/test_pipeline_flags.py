"""test_pipeline_flags.py - the sink knobs of `cdcflow delta|iceberg`: --target-file-size cuts data
files, --checkpoint-interval sets Delta's checkpoint cadence, and --partition-by keeps a transform's
own commas ("bucket(4, customer_id)"); tables read back by deltalake and pyiceberg."""

import glob
import json
import os
import subprocess

from conftest import CDCFLOW

N = 3000


def events(path):
    with open(path, "w") as f:
        for i in range(N):
            f.write(json.dumps({
                "before": None, "op": "c", "ts_ms": 1,
                "after": {"customer_id": i, "email": "u%d@example.com" % i, "first_name": "F%d" % i,
                          "last_name": "L", "phone": None, "address_line1": None, "city": "C", "state": None,
                          "postal_code": None, "country": "US", "registration_date": 1704103200123456,
                          "last_updated": 1704103200123456, "is_active": True, "customer_tier": "gold",
                          "lifetime_value": "AeJA"},
                "source": {"ts_ms": 1, "db": "cdcdb", "schema": "public", "table": "customers",
                           "lsn": 1000 + i, "txId": 1, "snapshot": "false"}}) + "\n")


def run(tmp_path, *args):
    r = subprocess.run([CDCFLOW, *args, "--source", "file:%s" % (tmp_path / "ev.jsonl"), "--available-now",
                        "--metrics-port", "0", "--checkpoint-location", str(tmp_path / "ck"), "--log-level", "warn"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def data_files(table):
    return [f for f in glob.glob(os.path.join(table, "**", "*.parquet"), recursive=True) if "_delta_log" not in f]


def test_target_file_size_cuts_files_and_keeps_every_row(tmp_path):
    from deltalake import DeltaTable
    events(tmp_path / "ev.jsonl")
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    run(tmp_path, "delta", "--table-path", whole)
    run(tmp_path, "delta", "--table-path", cut, "--target-file-size", "4k")
    assert len(data_files(whole)) == 1
    assert len(data_files(cut)) > 5
    a = DeltaTable(whole).to_pyarrow_table(columns=["customer_id"]).column(0).to_pylist()
    b = DeltaTable(cut).to_pyarrow_table(columns=["customer_id"]).column(0).to_pylist()
    assert sorted(a) == sorted(b) == list(range(N))


def test_checkpoint_interval(tmp_path):
    from deltalake import DeltaTable
    events(tmp_path / "ev.jsonl")
    t = str(tmp_path / "t")
    run(tmp_path, "delta", "--table-path", t, "--checkpoint-interval", "2", "--max-offsets-per-trigger", "500")
    log = os.listdir(os.path.join(t, "_delta_log"))
    assert sorted(f for f in log if f.endswith(".checkpoint.parquet")) == \
        ["%020d.checkpoint.parquet" % v for v in (2, 4)]
    assert json.load(open(os.path.join(t, "_delta_log", "_last_checkpoint")))["version"] == 4
    assert DeltaTable(t).to_pyarrow_table().num_rows == N
    bad = subprocess.run([CDCFLOW, "delta", "--checkpoint-interval", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--checkpoint-interval" in bad.stderr


def test_partition_transform_with_a_comma(tmp_path):
    from pyiceberg.table import StaticTable
    events(tmp_path / "ev.jsonl")
    run(tmp_path, "iceberg", "--warehouse", str(tmp_path / "w"), "--namespace", "n", "--table", "t",
        "--partition-by", "bucket(4, customer_id)")
    meta = tmp_path / "w" / "n" / "t" / "metadata"
    t = StaticTable.from_metadata(str(meta / ("v%s.metadata.json" % (meta / "version-hint.text").read_text().strip())))
    fields = t.spec().fields
    assert len(fields) == 1 and str(fields[0].transform) == "bucket[4]"
    assert t.scan().to_arrow().num_rows == N
