"""objstore.py - the stack's S3 server and Iceberg REST catalog as the tests reach them: the environment
cdcflow takes, and readers we did not write (boto3, deltalake, DuckDB httpfs, pyiceberg) set up for them.

The servers are started by scripts/stack.sh (S3: scripts/s3_server.py, moto; catalog: scripts/catalog.sh,
Apache Iceberg's REST catalog server storing its files in that S3).
"""

import os
import urllib.request
import uuid

import pytest

S3_ENDPOINT = os.environ.get("S3_ENDPOINT", "http://127.0.0.1:9400")
S3_BUCKET = os.environ.get("S3_BUCKET", "cdcflow")
ACCESS_KEY, SECRET_KEY, REGION = "cdcflow", "cdcflow-secret", "us-east-1"
CATALOG_URI = os.environ.get("ICEBERG_CATALOG_URI", "http://127.0.0.1:8181")


def cdcflow_env(**extra):
    """The environment of a cdcflow process that writes to the stack's S3 (and its catalog)."""
    env = dict(os.environ)
    env.update(AWS_ENDPOINT_URL_S3=S3_ENDPOINT, AWS_ACCESS_KEY_ID=ACCESS_KEY,
               AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION=REGION)
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(extra)
    return env


def s3_client(endpoint=S3_ENDPOINT):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))


def list_keys(prefix, endpoint=S3_ENDPOINT):
    c = s3_client(endpoint)
    return [o["Key"] for page in c.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])]


def delete_prefix(prefix, endpoint=S3_ENDPOINT):
    c = s3_client(endpoint)
    keys = list_keys(prefix, endpoint)
    for i in range(0, len(keys), 1000):
        c.delete_objects(Bucket=S3_BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


def download_prefix(prefix, dest, endpoint=S3_ENDPOINT):
    """Copy every object under s3://BUCKET/prefix into the directory dest (same relative names)."""
    c = s3_client(endpoint)
    n = 0
    for k in list_keys(prefix, endpoint):
        path = os.path.join(dest, k[len(prefix):].lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        c.download_file(S3_BUCKET, k, path)
        n += 1
    return n


def delta_storage_options(endpoint=S3_ENDPOINT):
    """deltalake's own S3 settings for the stack's server (reads only: no locking needed)."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION, "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true", "AWS_FORCE_PATH_STYLE": "true"}


def delta_table(uri, **kw):
    from deltalake import DeltaTable

    return DeltaTable(uri, storage_options=delta_storage_options(), **kw)


def rest_catalog():
    """pyiceberg's RestCatalog on the stack's catalog, its files read by pyiceberg's S3 FileIO."""
    from pyiceberg.catalog.rest import RestCatalog

    return RestCatalog("stack", **{"uri": CATALOG_URI, "s3.endpoint": S3_ENDPOINT,
                                   "s3.access-key-id": ACCESS_KEY, "s3.secret-access-key": SECRET_KEY,
                                   "s3.region": REGION, "s3.path-style-access": "true"})


def duckdb_s3(con, endpoint=S3_ENDPOINT):
    """Load DuckDB's httpfs (PyPI package duckdb-extension-httpfs) and give it the stack's S3 (or the
    S3-compatible server at endpoint)."""
    from conftest import duckdb_extension_path

    con.execute(f"LOAD '{duckdb_extension_path('httpfs')}'")
    host = endpoint.split("://", 1)[1]
    con.execute(f"""CREATE OR REPLACE SECRET stack_s3 (TYPE s3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}',
                    REGION '{REGION}', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)""")
    return con


def require_servers():
    """Fail (not skip) with what to do when the stack's S3 or catalog is down."""
    try:
        s3_client().head_bucket(Bucket=S3_BUCKET)
    except Exception as e:  # noqa: BLE001 - any failure means "down"
        pytest.fail(f"the stack's S3 at {S3_ENDPOINT} (bucket {S3_BUCKET}) does not answer: {e} - "
                    "start it with scripts/stack.sh start")
    try:
        urllib.request.urlopen(CATALOG_URI + "/v1/config", timeout=10).read()
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"the stack's Iceberg REST catalog at {CATALOG_URI} does not answer: {e} - "
                    "start it with scripts/stack.sh start")


@pytest.fixture
def s3_prefix():
    """A fresh key prefix in the stack's bucket, removed afterwards: (prefix, s3:// URL)."""
    require_servers()
    prefix = f"it-{uuid.uuid4().hex[:12]}"
    yield prefix, f"s3://{S3_BUCKET}/{prefix}"
    delete_prefix(prefix + "/")
