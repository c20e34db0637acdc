"""s3_tools.py - what bench/storage.sh and scripts/demo.sh need of the stack's S3 and Iceberg REST
catalog, through clients we did not write (boto3, the catalog's REST API):

    s3_tools.py up [s3|catalog]          exit 0 when S3 (and the catalog) answer, else say why, exit 1
    s3_tools.py put-rate                 the S3 server's own request rate for boto3 (no cdcflow)
    s3_tools.py clean PREFIX [NS ...]    drop the catalog's tables in each NS and NS itself, then
                                         delete every object under s3://BUCKET/PREFIX/
    s3_tools.py delete-topic TOPIC       delete a Kafka topic

The servers' addresses and keys come from tests/integration/objstore.py (S3_ENDPOINT, S3_BUCKET,
ICEBERG_CATALOG_URI override them)."""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import objstore  # noqa: E402


def catalog(method, path):
    req = urllib.request.Request(objstore.CATALOG_URI + path, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return json.loads(body) if body else None


def up(what):
    """0 when each server named in what ("s3", "catalog") answers; else print why and return 1."""
    try:
        if "s3" in what:
            objstore.s3_client().head_bucket(Bucket=objstore.S3_BUCKET)
    except Exception as e:  # noqa: BLE001 - any failure means "down"
        print(f"the stack's S3 at {objstore.S3_ENDPOINT} (bucket {objstore.S3_BUCKET}) does not answer "
              f"({type(e).__name__}: {e})")
        return 1
    try:
        if "catalog" in what:
            catalog("GET", "/v1/config")
    except Exception as e:  # noqa: BLE001
        print(f"the stack's Iceberg REST catalog at {objstore.CATALOG_URI} does not answer ({type(e).__name__}: {e})")
        return 1
    return 0


def put_rate(prefix="bench-put-rate"):
    """PUTs and GETs of the sizes a 100000-event commit writes (a ~0.5 MB data file, ~2 KiB log entries),
    from one boto3 client, one request at a time like cdcflow's sink."""
    c = objstore.s3_client()
    c.head_bucket(Bucket=objstore.S3_BUCKET)
    prefix = f"{prefix}-{os.getpid()}"
    try:
        for what, size, n in (("PUT", 2048, 200), ("GET", 2048, 200), ("PUT", 512 * 1024, 40)):
            body = os.urandom(size)
            t0 = time.perf_counter()
            for i in range(n):
                key = f"{prefix}/{size}-{i % 20 if what == 'GET' else i}"
                if what == "PUT":
                    c.put_object(Bucket=objstore.S3_BUCKET, Key=key, Body=body)
                else:
                    c.get_object(Bucket=objstore.S3_BUCKET, Key=key)["Body"].read()
            s = time.perf_counter() - t0
            print(f"s3 server alone (boto3, one at a time): {n} {what}s of {size // 1024} KiB in {s:.2f} s = "
                  f"{n / s:.0f} requests/s, {s * 1000 / n:.1f} ms each, {n * size / s / 1e6:.1f} MB/s")
    finally:
        objstore.delete_prefix(prefix + "/")
    return 0


def clean(prefix, namespaces):
    rc, dropped = 0, 0
    for ns in namespaces:
        q = urllib.parse.quote(ns, safe="")
        try:
            tables = catalog("GET", f"/v1/namespaces/{q}/tables").get("identifiers", [])
            for t in tables:
                catalog("DELETE", f"/v1/namespaces/{q}/tables/{urllib.parse.quote(t['name'], safe='')}")
            catalog("DELETE", f"/v1/namespaces/{q}")
            dropped += 1
        except urllib.error.HTTPError as e:
            if e.code != 404:           # 404: never created, nothing to drop
                print(f"note: could not drop namespace {ns} from the catalog: HTTP {e.code}")
                rc = 1
        except Exception as e:  # noqa: BLE001
            print(f"note: could not drop namespace {ns} from the catalog: {e}")
            rc = 1
    prefix = prefix.strip("/") + "/"
    try:
        n = len(objstore.list_keys(prefix))
        objstore.delete_prefix(prefix)
        left = len(objstore.list_keys(prefix))
        if left:
            print(f"note: {left} objects left under s3://{objstore.S3_BUCKET}/{prefix}")
            rc = 1
        else:
            print(f"removed {n} objects under s3://{objstore.S3_BUCKET}/{prefix}" +
                  (f" and {dropped} catalog namespace(s)" if dropped else ""))
    except Exception as e:  # noqa: BLE001
        print(f"note: could not delete s3://{objstore.S3_BUCKET}/{prefix}: {e}")
        rc = 1
    return rc


def delete_topic(topic):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                         "log_level": 3})   # no info lines about its background queue at exit
    admin.delete_topics([topic], operation_timeout=30)[topic].result(60)   # admin must outlive the future
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "up" and set(argv[2:]) <= {"s3", "catalog"}:
        return up(argv[2:] or ("s3", "catalog"))
    if len(argv) == 2 and argv[1] == "put-rate":
        return put_rate()
    if len(argv) >= 3 and argv[1] == "clean":
        return clean(argv[2], argv[3:])
    if len(argv) == 3 and argv[1] == "delete-topic":
        return delete_topic(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
