"""test_rest_catalog.py - the stack's Iceberg REST catalog (scripts/catalog.sh) orders writers of tables in S3.

pyiceberg, a client we did not write, creates a namespace and a table through the catalog, appends
rows and reads them back from S3; a second writer that commits on a stale base is refused by the
server (409, CommitFailedException), through pyiceberg and on the wire.  That refusal is what the C
client's commit (src/table/iceberg/rest.c) maps to a retriable conflict.

Needs the catalog (scripts/catalog.sh start) and the stack's S3 server; like the stack's tests these
fail, not skip, when it is down, so a green run means the catalog was tested.  Endpoints follow
scripts/catalog.sh's variables: ICEBERG_CATALOG_URI (or CATALOG_PORT), S3_ENDPOINT (or S3_PORT),
S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION.
"""

import json
import os
import urllib.error
import urllib.request
import uuid

import pyarrow as pa
import pytest

CATALOG_URI = os.environ.get(
    "ICEBERG_CATALOG_URI", f"http://127.0.0.1:{os.environ.get('CATALOG_PORT', '8181')}")
S3_ENDPOINT = os.environ.get("S3_ENDPOINT", f"http://127.0.0.1:{os.environ.get('S3_PORT', '9400')}")
S3_BUCKET = os.environ.get("S3_BUCKET", "cdcflow")
S3_ACCESS_KEY = os.environ.get("S3_ACCESS_KEY", "cdcflow")
S3_SECRET_KEY = os.environ.get("S3_SECRET_KEY", "cdcflow-secret")
S3_REGION = os.environ.get("S3_REGION", "us-east-1")
WAREHOUSE = os.environ.get("ICEBERG_CATALOG_WAREHOUSE", f"s3://{S3_BUCKET}/warehouse")

ROWS = pa.table({
    "id": pa.array([1, 2, 3], pa.int64()),
    "name": pa.array(["ada", "grace", None], pa.string()),
})


def rest(method, path, body=None):
    """(status, parsed JSON body) of one request to the catalog."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(CATALOG_URI + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


def s3fs():
    from pyarrow import fs
    scheme, _, host = S3_ENDPOINT.partition("://")
    return fs.S3FileSystem(access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY, region=S3_REGION,
                           endpoint_override=host, scheme=scheme, allow_bucket_creation=True)


@pytest.fixture(scope="module")
def catalog():
    try:
        status, cfg = rest("GET", "/v1/config")
    except OSError as e:
        pytest.fail(f"no Iceberg REST catalog at {CATALOG_URI} ({e}): start it with scripts/catalog.sh start")
    assert status == 200 and "overrides" in cfg, (status, cfg)
    fs = s3fs()
    try:
        fs.create_dir(S3_BUCKET)   # the bucket, if the S3 server has none yet
    except OSError as e:
        pytest.fail(f"no S3 server at {S3_ENDPOINT} for bucket {S3_BUCKET} ({e})")

    from pyiceberg.catalog.rest import RestCatalog
    return RestCatalog("cdcflow", **{
        "uri": CATALOG_URI, "warehouse": WAREHOUSE,
        "s3.endpoint": S3_ENDPOINT, "s3.access-key-id": S3_ACCESS_KEY,
        "s3.secret-access-key": S3_SECRET_KEY, "s3.region": S3_REGION,
    })


@pytest.fixture
def namespace(catalog):
    ns = "rest_" + uuid.uuid4().hex[:10]
    catalog.create_namespace(ns)
    return ns


def test_create_append_read_back(catalog, namespace):
    table = catalog.create_table(f"{namespace}.people", schema=ROWS.schema)
    assert table.metadata_location.startswith(f"{WAREHOUSE}/{namespace}/people/metadata/")
    table.append(ROWS)

    # A fresh load, as another process would see it: the catalog's pointer, then files in S3.
    again = catalog.load_table(f"{namespace}.people")
    assert again.metadata.current_snapshot_id == table.metadata.current_snapshot_id
    got = again.scan().to_arrow().sort_by("id")
    assert got.to_pydict() == ROWS.to_pydict()

    # The metadata and data really are objects in the bucket, not files on the server's disk.
    fs = s3fs()
    meta = again.metadata_location.removeprefix("s3://")
    assert fs.get_file_info(meta).size > 0
    data_files = [t.file.file_path for t in again.scan().plan_files()]
    assert data_files and all(p.startswith(f"{WAREHOUSE}/{namespace}/people/data/") for p in data_files)

    ns_status, _ = rest("POST", "/v1/namespaces", {"namespace": [namespace], "properties": {}})
    assert ns_status == 409, "creating an existing namespace is a conflict (409)"


def test_stale_writer_is_refused(catalog, namespace):
    from pyiceberg.exceptions import CommitFailedException

    name = f"{namespace}.race"
    catalog.create_table(name, schema=ROWS.schema)
    first = catalog.load_table(name)
    second = catalog.load_table(name)   # same base as first
    first.append(ROWS)
    with pytest.raises(CommitFailedException):
        second.append(ROWS)
    assert len(catalog.load_table(name).scan().to_arrow()) == len(ROWS)

    # On the wire: the commit route answers a requirement that no longer holds with 409 and the
    # error type the spec names, whatever the updates are.
    status, body = rest("GET", f"/v1/namespaces/{namespace}/tables/race")
    assert status == 200
    meta = body["metadata"]
    stale = {
        "requirements": [
            {"type": "assert-table-uuid", "uuid": meta["table-uuid"]},
            {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": None},
        ],
        "updates": [{"action": "set-properties", "updates": {"cdcflow.test": "stale"}}],
    }
    status, body = rest("POST", f"/v1/namespaces/{namespace}/tables/race", stale)
    assert status == 409, (status, body)
    assert body["error"]["type"] == "CommitFailedException"
    assert "cdcflow.test" not in catalog.load_table(name).properties

    # The same commit on the current base is applied.
    stale["requirements"][1]["snapshot-id"] = meta["current-snapshot-id"]
    status, body = rest("POST", f"/v1/namespaces/{namespace}/tables/race", stale)
    assert status == 200, (status, body)
    assert body["metadata-location"] != meta.get("metadata-location")
    assert catalog.load_table(name).properties["cdcflow.test"] == "stale"
