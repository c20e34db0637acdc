"""test_spark_s3.py - Spark reads the tables cdcflow writes to the stack's S3: Delta through Hadoop's S3A
file system (an append table, and an upsert table in 13 commits whose log Spark reads from the checkpoint
at version 10), Iceberg through the stack's REST catalog with Iceberg's S3FileIO (upsert with its deletes
applied, and append).  What Spark reads is compared with a model of the events and with deltalake /
pyiceberg reading the same objects.

The tables come from build/cdcflow (`delta` / `iceberg` with `--source file:`) on Debezium JSON lines
made from the captured fixtures in tests/data/debezium, the same events test_spark_readers.py uses on
local files.  Spark's jars (Delta, Iceberg, hadoop-aws with its AWS SDK, iceberg-aws-bundle) come from
deploy/spark/pom.xml through scripts/setup.sh into .cache/spark/jars; without them (or without pyspark
or a JDK) the module skips.  The stack's S3 and catalog must be up (scripts/stack.sh start): fails, not
skips, when down.
"""

import os
import subprocess
import sys
import uuid

import pytest

from conftest import CDCFLOW, ROOT
from objstore import (ACCESS_KEY, CATALOG_URI, REGION, S3_BUCKET, S3_ENDPOINT, SECRET_KEY, cdcflow_env,
                      delete_prefix, delta_table, list_keys, require_servers, rest_catalog)
from test_spark_readers import (JARS_DIR, _spark_or_skip, arrow_rows, customer_events, local_session,
                                order_events, spark_rows, tuples)

sys.path.insert(0, os.path.join(ROOT, "tests", "common"))
from cdc_tables import CUSTOMER_COLS, ORDER_COLS, ORDERS_TOPIC, mirror, order_row, write_jsonl  # noqa: E402

N_CUSTOMER_EVENTS = 150
CUSTOMER_BATCH = 12          # -> 13 Delta commits: a checkpoint at version 10, read over S3A
ICEBERG_CUSTOMER_BATCH = 50  # -> 3 Iceberg snapshots, the later ones with deletes
N_ORDER_EVENTS = 40
ORDER_BATCH = 25             # -> 2 commits


def _s3_jars_or_skip():
    jars = _spark_or_skip()
    names = " ".join(os.path.basename(j) for j in jars)
    for want in ("hadoop-aws", "aws-java-sdk-bundle", "iceberg-aws-bundle"):
        if want not in names:
            pytest.skip(f"Spark's S3 jars ({want}) are not in {JARS_DIR} (scripts/setup.sh fetches them)")
    return jars


def run(sink, events_file, workdir, *args):
    """build/cdcflow SINK on a file of events, writing to the stack's S3 (and catalog)."""
    if not os.access(CDCFLOW, os.X_OK):
        pytest.fail(f"{CDCFLOW} is not built (make)")
    cmd = [CDCFLOW, sink, "--source", f"file:{events_file}", "--available-now", "--metrics-port", "0",
           "--checkpoint-location", os.path.join(workdir, "ckpt-" + uuid.uuid4().hex[:8]),
           "--trigger-interval", "10ms", "--log-level", "warn", *[str(a) for a in args]]
    env = cdcflow_env()
    env.pop("ICEBERG_CATALOG_URI", None)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"


# ------------------------------------------------------------------ tables (written once per module)

@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    require_servers()
    root = str(tmp_path_factory.mktemp("cdcflow-s3"))
    tag = uuid.uuid4().hex[:10]
    prefix = f"it-spark-{tag}"
    cust, orders = customer_events(N_CUSTOMER_EVENTS), order_events(N_ORDER_EVENTS)
    cust_file, orders_file = os.path.join(root, "customers.jsonl"), os.path.join(root, "orders.jsonl")
    write_jsonl(cust_file, cust)
    write_jsonl(orders_file, orders)
    t = {"customers": cust, "orders": orders, "prefix": prefix, "ns": f"ns_{tag}",
         "delta_upsert": f"{S3_BUCKET}/{prefix}/delta/customers",
         "delta_append": f"{S3_BUCKET}/{prefix}/delta/orders"}
    wh = f"s3://{S3_BUCKET}/{prefix}/wh"
    try:
        run("delta", cust_file, root, "--table-path", "s3://" + t["delta_upsert"], "--mode", "upsert",
            "--max-offsets-per-trigger", CUSTOMER_BATCH)
        run("delta", orders_file, root, "--topic", ORDERS_TOPIC, "--table-path", "s3://" + t["delta_append"],
            "--max-offsets-per-trigger", ORDER_BATCH)
        rest = ("--warehouse", wh, "--namespace", t["ns"], "--catalog-uri", CATALOG_URI)
        run("iceberg", cust_file, root, *rest, "--table", "customers", "--mode", "upsert",
            "--max-offsets-per-trigger", ICEBERG_CUSTOMER_BATCH)
        run("iceberg", orders_file, root, *rest, "--topic", ORDERS_TOPIC, "--table", "orders",
            "--max-offsets-per-trigger", ORDER_BATCH)
        yield t
    finally:
        try:
            cat = rest_catalog()
            for name in ("customers", "orders"):
                try:
                    cat.drop_table(f"{t['ns']}.{name}")
                except Exception:  # noqa: BLE001 - a table a failed run never made
                    pass
            cat.drop_namespace(t["ns"])
        except Exception:  # noqa: BLE001 - cleanup only
            pass
        delete_prefix(prefix + "/")


# ------------------------------------------------------------------ Spark

@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    jars = _s3_jars_or_skip()
    scratch = tmp_path_factory.mktemp("spark-s3")
    s3a = {
        "fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.s3a.endpoint": S3_ENDPOINT,
        "fs.s3a.endpoint.region": REGION,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": ACCESS_KEY,
        "fs.s3a.secret.key": SECRET_KEY,
        # Only these keys: no lookups of the environment, profiles or an instance metadata service.
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        # A server that is down should fail the test in seconds, not after S3A's minutes of retries.
        "fs.s3a.attempts.maximum": "2",
        "fs.s3a.retry.limit": "2",
        "fs.s3a.connection.establish.timeout": "5000",
    }
    rest = {
        "": "org.apache.iceberg.spark.SparkCatalog",
        ".type": "rest",
        ".uri": CATALOG_URI,
        ".io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        ".s3.endpoint": S3_ENDPOINT,
        ".s3.path-style-access": "true",
        ".s3.access-key-id": ACCESS_KEY,
        ".s3.secret-access-key": SECRET_KEY,
        ".client.region": REGION,
    }
    conf = {"spark.hadoop." + k: v for k, v in s3a.items()}
    conf.update({"spark.sql.catalog.stack" + k: v for k, v in rest.items()})
    session = local_session("cdcflow-s3-readers", jars, scratch, conf)
    yield session
    session.stop()


# ------------------------------------------------------------------ Delta over S3A

def test_delta_upsert_on_s3(spark, tables):
    path = tables["delta_upsert"]
    assert any(k.endswith("00000000000000000010.checkpoint.parquet")
               for k in list_keys(tables["prefix"] + "/delta/customers/_delta_log/"))
    df = spark.read.format("delta").load("s3a://" + path)
    want = tuples(mirror(tables["customers"]).values(), CUSTOMER_COLS)
    assert len(want) > 10
    assert spark_rows(df, CUSTOMER_COLS) == want
    # Every column, ingestion times included, as delta-rs reads the same objects.
    assert spark_rows(df) == arrow_rows(delta_table("s3://" + path).to_pyarrow_table())
    hist = spark.sql(f"DESCRIBE HISTORY delta.`s3a://{path}`").collect()
    assert max(r["version"] for r in hist) == 12


def test_delta_append_on_s3(spark, tables):
    path = tables["delta_append"]
    df = spark.read.format("delta").load("s3a://" + path)
    assert dict(df.dtypes)["total_amount"] == "decimal(12,2)"
    assert spark_rows(df, ORDER_COLS) == tuples((order_row(e) for e in tables["orders"]), ORDER_COLS)
    assert spark_rows(df) == arrow_rows(delta_table("s3://" + path).to_pyarrow_table())


# ------------------------------------------------------------------ Iceberg through the REST catalog

def test_iceberg_rest_upsert(spark, tables):
    name = f"stack.{tables['ns']}.customers"
    df = spark.table(name)
    want = tuples(mirror(tables["customers"]).values(), CUSTOMER_COLS)
    assert spark_rows(df, CUSTOMER_COLS) == want
    tbl = rest_catalog().load_table(f"{tables['ns']}.customers")
    assert spark_rows(df) == arrow_rows(tbl.scan().to_arrow())
    snaps = spark.sql(f"SELECT snapshot_id FROM {name}.snapshots").collect()
    assert sorted(r[0] for r in snaps) == sorted(s.snapshot_id for s in tbl.metadata.snapshots)
    assert len(snaps) == -(-N_CUSTOMER_EVENTS // ICEBERG_CUSTOMER_BATCH)


def test_iceberg_rest_append(spark, tables):
    df = spark.table(f"stack.{tables['ns']}.orders")
    assert spark_rows(df, ORDER_COLS) == tuples((order_row(e) for e in tables["orders"]), ORDER_COLS)
    tbl = rest_catalog().load_table(f"{tables['ns']}.orders")
    assert spark_rows(df) == arrow_rows(tbl.scan().to_arrow())
