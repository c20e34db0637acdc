"""test_object_storage.py - the real chain into object storage: PostgreSQL -> Debezium -> Kafka -> one
`cdcflow run` process -> the four tables in Delta on S3 and in Iceberg through the REST catalog, in
upsert and in append mode, each equal to PostgreSQL, read back by engines we did not write with their
own S3 support (deltalake's object store, DuckDB httpfs, pyiceberg's RestCatalog and S3 FileIO).

Also: a second run resumes every table from its own offsets; cdcflow's own table commands work on
s3:// tables; configurations that cannot be safe or cannot work are refused with one clear line.
"""

import os
import random
import re
import subprocess

import pytest
from conftest import CDCFLOW, ROOT, duckdb_conn
from objstore import (CATALOG_URI, S3_BUCKET, cdcflow_env, delta_table, duckdb_s3, list_keys, rest_catalog,
                      s3_prefix)  # noqa: F401 - s3_prefix is a fixture
from test_multitable import SHAPE, TABLES, make_changes, norm, pg_rows, rows_of, wait_published

ID_BASE = 9_900_000
TOPICS = r"^postgres\.public\.(customers|orders|products|inventory)$"


def conf_text(url, ns, tag):
    """Four pipelines, each serving all four topics (one table per topic): Delta upsert and append on
    S3, Iceberg upsert and append through the REST catalog."""
    common = (f"--topic '{TOPICS}' --available-now --metrics-port 0 --log-level warn "
              f"--checkpoint-location /tmp/cdcflow-it-{tag}")
    return "\n".join([
        f"delta   {common} --table-path {url}/delta/upsert/{{table}} --mode upsert --group-id os-du-{tag}",
        "table   orders     --partition-by status",
        f"delta   {common} --table-path {url}/delta/append/{{table}} --mode append --group-id os-da-{tag}",
        f"iceberg {common} --warehouse {url}/iceberg --namespace {ns}_u --table {{table}} --mode upsert "
        f"--catalog-uri {CATALOG_URI} --group-id os-iu-{tag}",
        "table   orders     --partition-by status",
        f"iceberg {common} --warehouse {url}/iceberg --namespace {ns}_a --table {{table}} --mode append "
        f"--catalog-uri {CATALOG_URI} --group-id os-ia-{tag}",
    ]) + "\n"


def run_conf(tmp_path, text):
    path = tmp_path / "s3.conf"
    path.write_text(text)
    r = subprocess.run([CDCFLOW, "run", str(path)], capture_output=True, text=True, timeout=900, env=cdcflow_env())
    assert r.returncode == 0, r.stderr[-4000:]
    return r


def latest_images(rows, table, lo, hi):
    """An append table's rows reduced to the state they describe: per key the change with the highest
    source LSN, deleted keys left out."""
    key, cols = SHAPE[table]
    last = {}
    for r in rows:
        k = r[key]
        if lo <= k < hi and (k not in last or r["_source_lsn"] > last[k]["_source_lsn"]):
            last[k] = r
    return {k: tuple(norm(r[c]) for c in cols) for k, r in last.items() if r["_cdc_operation"] not in ("d", "DELETE")}


def check_tables(pg, url, ns, lo):
    hi = lo + 1000
    cat = rest_catalog()
    con = duckdb_s3(duckdb_conn())
    try:
        for t in TABLES:
            key, cols = SHAPE[t]
            want = pg_rows(pg, t, lo, hi)
            assert want, t
            du = delta_table(f"{url}/delta/upsert/{t}").to_pyarrow_table(columns=[key] + cols).to_pylist()
            assert rows_of(du, t, lo, hi) == want, f"delta upsert {t} (deltalake)"
            got = con.execute(f"SELECT {key}, {', '.join(cols)} FROM delta_scan('{url}/delta/upsert/{t}')").fetchall()
            assert rows_of([dict(zip([key] + cols, r)) for r in got], t, lo, hi) == want, f"delta upsert {t} (DuckDB)"
            da = delta_table(f"{url}/delta/append/{t}").to_pyarrow_table(
                columns=[key, "_cdc_operation", "_source_lsn"] + cols).to_pylist()
            assert latest_images(da, t, lo, hi) == want, f"delta append {t} (deltalake)"
            iu = cat.load_table(f"{ns}_u.{t}").scan(selected_fields=tuple([key] + cols)).to_arrow().to_pylist()
            assert rows_of(iu, t, lo, hi) == want, f"iceberg upsert {t} (pyiceberg RestCatalog)"
            ia = cat.load_table(f"{ns}_a.{t}").scan(
                selected_fields=tuple([key, "_cdc_operation", "_source_lsn"] + cols)).to_arrow().to_pylist()
            assert latest_images(ia, t, lo, hi) == want, f"iceberg append {t} (pyiceberg RestCatalog)"
    finally:
        con.close()


def test_four_tables_on_s3_and_rest_catalog_equal_postgres(pg, connector, tmp_path, s3_prefix):
    if not os.access(CDCFLOW, os.X_OK):
        pytest.fail("build/cdcflow is not built")
    prefix, url = s3_prefix
    lo = ID_BASE + random.randrange(0, 90) * 1000
    tag = "%08x" % random.getrandbits(32)
    ns = "it_" + tag
    text = conf_text(url, ns, tag)

    make_changes(pg, lo, 0)
    wait_published(pg, lo)
    run_conf(tmp_path, text)
    keys = list_keys(prefix + "/")
    for mode in ("upsert", "append"):
        for t in TABLES:
            assert any(k.startswith(f"{prefix}/delta/{mode}/{t}/_delta_log/") for k in keys), (mode, t)
    # the Iceberg tables live in the same bucket, written there by cdcflow (data) and the catalog (metadata)
    assert any(re.match(rf"{prefix}/iceberg/{ns}_u/orders/data/.*\.parquet$", k) for k in keys), keys[:20]
    assert any(re.match(rf"{prefix}/iceberg/{ns}_u/orders/metadata/.*\.metadata\.json$", k) for k in keys)
    # no temporary or partial object is left where a reader lists
    assert not [k for k in keys if k.endswith(".tmp")], [k for k in keys if k.endswith(".tmp")]
    check_tables(pg, url, ns, lo)
    assert delta_table(f"{url}/delta/upsert/orders").metadata().partition_columns == ["status"]
    assert [f.name for f in rest_catalog().load_table(f"{ns}_u.orders").spec().fields] == ["status"]

    # more changes: a second process resumes every table from that table's offsets
    make_changes(pg, lo, 1)
    wait_published(pg, lo)
    run_conf(tmp_path, text)
    check_tables(pg, url, ns, lo)

    # cdcflow's own commands on s3:// tables
    env = cdcflow_env(ICEBERG_CATALOG_URI=CATALOG_URI)
    for path in (f"{url}/delta/upsert/customers", f"{url}/iceberg/{ns}_u/customers"):
        r = subprocess.run([CDCFLOW, "history", path], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0 and r.stdout.strip(), (path, r.stderr)
        r = subprocess.run([CDCFLOW, "scan", path, "--limit", "3", "--columns", "customer_id,email"],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0 and "customer_id" in r.stdout, (path, r.stderr)


def one_line_error(argv, env, timeout=120):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    return r.returncode, lines


def test_unsafe_or_broken_configurations_fail_with_one_clear_line(tmp_path, s3_prefix):
    prefix, url = s3_prefix
    events = tmp_path / "events.jsonl"
    events.write_text("null\n")
    base = [CDCFLOW, "--source", f"file:{events}", "--available-now", "--metrics-port", "0", "--dlq", "off",
            "--checkpoint-location", str(tmp_path / "ck")]

    def run(sink, *args, env=None):
        return one_line_error([base[0], sink] + base[1:] + list(args), env or cdcflow_env())

    # Iceberg on S3 without a catalog: refused, naming the flag that fixes it
    rc, lines = run("iceberg", "--warehouse", f"{url}/wh", "--namespace", "n", "--table", "t")
    assert rc != 0 and len(lines) == 1 and "--catalog-uri" in lines[0], lines
    # wrong credentials: one line naming the bucket and the status
    rc, lines = run("delta", "--table-path", f"{url}/t", env=cdcflow_env(AWS_SECRET_ACCESS_KEY="wrong"))
    assert rc != 0 and len(lines) == 1 and "403" in lines[0] and S3_BUCKET in lines[0], lines
    assert "wrong" not in lines[0]
    # a missing bucket
    rc, lines = run("delta", "--table-path", "s3://no-such-bucket-cdcflow/t")
    assert rc != 0 and len(lines) == 1 and "NoSuchBucket" in lines[0], lines
    # a catalog that does not answer
    rc, lines = run("iceberg", "--warehouse", f"{url}/wh", "--namespace", "n", "--table", "t",
                    "--catalog-uri", "http://127.0.0.1:9")
    assert rc != 0 and len(lines) == 1 and "127.0.0.1:9" in lines[0], lines
    # nothing was written by the refused runs
    assert not list_keys(prefix + "/wh/")


def test_dead_letters_on_s3_one_object_per_commit(tmp_path, s3_prefix):
    """--dlq file:s3://...: S3 has no append, so each commit's dead letters are one object of their own
    under the prefix, written before the table commit that moves past them."""
    import base64
    import json

    from objstore import S3_BUCKET as bucket
    from objstore import s3_client

    prefix, url = s3_prefix
    good = open(os.path.join(ROOT, "tests", "data", "debezium", "customers_create_env.json")).read()
    good = json.dumps(json.loads(good))       # one line
    events = tmp_path / "events.jsonl"
    events.write_text(f"{good}\nthis is not json\nnull\n{{\"payload\": 7}}\n")
    r = subprocess.run([CDCFLOW, "delta", "--source", f"file:{events}", "--table-path", f"{url}/t",
                        "--dlq", f"file:{url}/dlq", "--available-now", "--metrics-port", "0",
                        "--checkpoint-location", str(tmp_path / "ck"), "--log-level", "warn"],
                       capture_output=True, text=True, timeout=120, env=cdcflow_env())
    assert r.returncode == 0, r.stderr
    keys = list_keys(prefix + "/dlq/")
    assert len(keys) == 1 and re.search(r"/dead-letter-\d{13}-[0-9a-f-]{36}\.jsonl$", keys[0]), keys
    lines = s3_client().get_object(Bucket=bucket, Key=keys[0])["Body"].read().decode().splitlines()
    values = [base64.b64decode(json.loads(line)["value_base64"]) for line in lines]
    assert values == [b"this is not json", b'{"payload": 7}'], values
    # the table moved past them: a second run writes no new dead letters
    r = subprocess.run([CDCFLOW, "delta", "--source", f"file:{events}", "--table-path", f"{url}/t",
                        "--dlq", f"file:{url}/dlq", "--available-now", "--metrics-port", "0",
                        "--checkpoint-location", str(tmp_path / "ck"), "--log-level", "warn"],
                       capture_output=True, text=True, timeout=120, env=cdcflow_env())
    assert r.returncode == 0, r.stderr
    assert list_keys(prefix + "/dlq/") == keys
