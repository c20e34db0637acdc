"""test_s3_store.py - the stack's S3 is fit to hold tables: it enforces If-None-Match: * under a race, checks
every SigV4 signature, and cdcflow's S3 store passes its whole battery against it.

The server is scripts/s3_server.py (moto), started by scripts/stack.sh on S3_ENDPOINT
(default http://127.0.0.1:9400), bucket cdcflow, key pair cdcflow / cdcflow-secret, region us-east-1.
The requests here are signed by botocore, independently of cdcflow's own signing.
"""

import concurrent.futures
import os
import subprocess
import threading
import uuid

import pytest

from conftest import ROOT

S3_ENDPOINT = os.environ.get("S3_ENDPOINT", "http://127.0.0.1:9400")
S3_BUCKET = os.environ.get("S3_BUCKET", "cdcflow")
ACCESS_KEY, SECRET_KEY, REGION = "cdcflow", "cdcflow-secret", "us-east-1"


def client(access_key=ACCESS_KEY, secret_key=SECRET_KEY, pool=16):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name=REGION,
                        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                        config=Config(s3={"addressing_style": "path"}, max_pool_connections=pool,
                                      retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))


def status_of(call):
    """HTTP status of a botocore call, and the S3 error code ("" on success)."""
    from botocore.exceptions import ClientError

    try:
        call()
        return 200, ""
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Code", "")


@pytest.fixture(scope="module")
def s3():
    c = client()
    try:
        c.head_bucket(Bucket=S3_BUCKET)
    except Exception as e:  # noqa: BLE001 - any failure means "down"
        pytest.fail(f"the stack's S3 at {S3_ENDPOINT} (bucket {S3_BUCKET}) does not answer: {e} - "
                    "start it with scripts/stack.sh start")
    prefix = f"it-{uuid.uuid4()}/"
    yield c, prefix
    keys = [o["Key"] for page in c.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])]
    for i in range(0, len(keys), 1000):
        c.delete_objects(Bucket=S3_BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


def race(c, key, writers, body_size=256 * 1024):
    """Start `writers` conditional PUTs of one key at the same instant; their statuses and the winner's body."""
    barrier = threading.Barrier(writers)

    def put(i):
        body = bytes([i]) * body_size
        barrier.wait()
        return status_of(lambda: c.put_object(Bucket=S3_BUCKET, Key=key, Body=body, IfNoneMatch="*"))

    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(put, range(writers)))
    stored = c.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()
    return results, stored


def test_racing_conditional_puts_have_exactly_one_winner(s3):
    c, prefix = s3
    for round_ in range(25):
        key = f"{prefix}race/_delta_log/{round_:020d}.json"
        results, stored = race(c, key, 2)
        assert sorted(results) == [(200, ""), (412, "PreconditionFailed")], (round_, results)
        winner = results.index((200, ""))
        assert stored == bytes([winner]) * len(stored), "the object is not the winner's"


def test_eight_writers_one_winner(s3):
    c, prefix = s3
    results, stored = race(c, f"{prefix}race8/_delta_log/00000000000000000000.json", 8)
    assert [r for r in results if r[0] == 200] == [(200, "")], results
    assert sorted(r for r in results if r[0] != 200) == [(412, "PreconditionFailed")] * 7, results
    winner = results.index((200, ""))
    assert stored[:1] == bytes([winner])


def test_conditional_put_of_an_existing_key_fails_and_keeps_it(s3):
    c, prefix = s3
    key = f"{prefix}once.json"
    assert status_of(lambda: c.put_object(Bucket=S3_BUCKET, Key=key, Body=b"first", IfNoneMatch="*")) == (200, "")
    assert status_of(lambda: c.put_object(Bucket=S3_BUCKET, Key=key, Body=b"second", IfNoneMatch="*")) == \
        (412, "PreconditionFailed")
    assert c.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read() == b"first"
    # a plain PUT still replaces
    c.put_object(Bucket=S3_BUCKET, Key=key, Body=b"third")
    assert c.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read() == b"third"


def test_server_checks_signatures_like_aws(s3):
    c, prefix = s3
    key = f"{prefix}signed.json"
    assert status_of(lambda: client(secret_key="not-the-secret").put_object(Bucket=S3_BUCKET, Key=key, Body=b"x")) \
        == (403, "SignatureDoesNotMatch")
    assert status_of(lambda: client(access_key="AKIDUNKNOWN").put_object(Bucket=S3_BUCKET, Key=key, Body=b"x")) \
        == (403, "InvalidAccessKeyId")
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{S3_ENDPOINT}/{S3_BUCKET}/{key}", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    assert b"<Code>AccessDenied</Code>" in e.value.read()
    # none of these wrote anything
    assert status_of(lambda: c.head_object(Bucket=S3_BUCKET, Key=key))[0] == 404


def test_escaped_keys_round_trip(s3):
    """Keys as Delta partitions name them, signed by botocore, accepted by the checking server."""
    c, prefix = s3
    keys = [f"{prefix}t/city=New York/part-0.parquet", f"{prefix}t/note=a%20b%2Fc/p 1.parquet",
            f"{prefix}t/sym=a&b<c>'\"/x+y=z.parquet", f"{prefix}t/utf8=\u00e9t\u00e9/~x.json"]
    for k in keys:
        c.put_object(Bucket=S3_BUCKET, Key=k, Body=k.encode())
    listed = [o["Key"] for o in c.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"{prefix}t/")["Contents"]]
    assert sorted(listed) == sorted(keys)
    for k in keys:
        assert c.get_object(Bucket=S3_BUCKET, Key=k)["Body"].read() == k.encode()


def test_multipart_minimum_part_size_is_enforced(s3):
    """Like S3, parts but the last must be 5 MiB: the store's multipart test would prove little otherwise."""
    c, prefix = s3
    key = f"{prefix}mp-small-parts.bin"
    up = c.create_multipart_upload(Bucket=S3_BUCKET, Key=key)["UploadId"]
    parts = [{"PartNumber": n, "ETag": c.upload_part(Bucket=S3_BUCKET, Key=key, UploadId=up, PartNumber=n,
                                                      Body=b"x" * 1024)["ETag"]} for n in (1, 2)]
    assert status_of(lambda: c.complete_multipart_upload(Bucket=S3_BUCKET, Key=key, UploadId=up,
                                                         MultipartUpload={"Parts": parts}))[1] == "EntityTooSmall"
    c.abort_multipart_upload(Bucket=S3_BUCKET, Key=key, UploadId=up)
    assert status_of(lambda: c.head_object(Bucket=S3_BUCKET, Key=key))[0] == 404


def test_store_battery_runs_against_the_stack(s3):
    """cdcflow's S3 store (tests/unit/test_store.c) against this server: it must not skip, and must pass."""
    exe = os.path.join(ROOT, "build", "tests", "test_store")
    if not os.path.exists(exe):
        subprocess.run(["make", "-s", "build/tests/test_store"], cwd=ROOT, check=True, timeout=300)
    env = dict(os.environ, S3_ENDPOINT=S3_ENDPOINT, S3_BUCKET=S3_BUCKET)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name, None)  # the stack's key pair, not whatever the caller has
    r = subprocess.run([exe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert "skipped:" not in out, out
    assert r.returncode == 0, out
    assert " 0 failed" in out, out
    for case in ("s3_battery", "s3_multipart", "s3_list_pages", "s3_escaped_keys", "s3_errors", "s3_threads"):
        assert f"ok   store.{case}" in out, out
