"""scaleout_util.py - helpers of test_scaleout.py: Debezium-shaped customer change events, a
producer model that knows the final state it produced, cdcflow process handling, and readers of
the Delta log / Iceberg metadata that do not go through cdcflow.

Events follow what the project's stack emits (Debezium 2.7 PostgreSQL connector, Kafka Connect
JsonConverter with schemas on key and value; see tests/data/debezium/make_fixtures.py): the
{"schema","payload"} envelope, source.lsn, op c/u/d with before/after images.  Each image carries
its own LSN in the e-mail ("k<id>.l<lsn>@scaleout.test"), so every row of a table or of a change
feed says which change it came from.
"""

import base64
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CDCFLOW = os.environ.get("CF_CDCFLOW", os.path.join(ROOT, "build", "cdcflow"))
KAFKA_BOOTSTRAP = f"127.0.0.1:{os.environ.get('STACK_KAFKA_PORT', '9092')}"


# ------------------------------------------------------------------ events

# The envelope's schema parts, as the decoder fixtures build them (tests/data/debezium/make_fixtures.py).
sys.path.insert(0, os.path.join(ROOT, "tests", "data", "debezium"))
from make_fixtures import CUSTOMER_FIELDS, SOURCE_SCHEMA as _SOURCE_SCHEMA, f as _f  # noqa: E402


_TX_SCHEMA = {"type": "struct", "fields": [
    _f("string", "id", False), _f("int64", "total_order", False), _f("int64", "data_collection_order", False)],
    "optional": True, "name": "event.block", "version": 1, "field": "transaction"}


def _row_schema(which):
    return {"type": "struct", "fields": CUSTOMER_FIELDS, "optional": True,
            "name": "postgres.public.customers.Value", "field": which}


VALUE_SCHEMA = {"type": "struct", "fields": [
    _row_schema("before"), _row_schema("after"), _SOURCE_SCHEMA, _TX_SCHEMA,
    _f("string", "op", False), _f("int64", "ts_ms"), _f("int64", "ts_us"), _f("int64", "ts_ns")],
    "optional": False, "name": "postgres.public.customers.Envelope", "version": 2}

KEY_SCHEMA = {"type": "struct", "fields": [_f("int32", "customer_id", False, default=0)],
              "optional": False, "name": "postgres.public.customers.Key"}

TIERS = ("bronze", "silver", "gold", "platinum")
CITIES = ("Austin", "Paris", "Lyon", "Osaka", "Recife", "Bonn")


def dec_b64(unscaled):
    """Kafka Connect Decimal: Java BigInteger.toByteArray(), base64."""
    n = 1
    while not (-(1 << (8 * n - 1)) <= unscaled < (1 << (8 * n - 1))):
        n += 1
    return base64.b64encode(unscaled.to_bytes(n, "big", signed=True)).decode()


def email_of(cid, lsn):
    return "k%d.l%d@scaleout.test" % (cid, lsn)


_EMAIL_RE = re.compile(r"^k(\d+)\.l(\d+)@scaleout\.test$")


def lsn_of_email(email):
    """The LSN an image was made at, from its e-mail; None for rows not made by this module."""
    m = _EMAIL_RE.match(email or "")
    return int(m.group(2)) if m else None


def customer_image(cid, lsn, rnd):
    """A customers row whose e-mail names (cid, lsn); the rest varies."""
    ts_us = 1_750_000_000_000_000 + lsn
    return {"customer_id": cid, "email": email_of(cid, lsn), "first_name": "F%d" % cid,
            "last_name": "L%d" % (lsn % 9973), "phone": None, "address_line1": "%d Main St" % (lsn % 500),
            "city": rnd.choice(CITIES), "state": "ST", "postal_code": "%05d" % (lsn % 100000), "country": "US",
            "registration_date": 1_704_103_200_000_000 + cid, "last_updated": ts_us, "is_active": bool(lsn % 2),
            "customer_tier": rnd.choice(TIERS), "lifetime_value": dec_b64(lsn % 10_000_000)}


def envelope(op, before, after, lsn, txid):
    ts_ms = 1_750_000_000_000 + lsn // 1000
    src = {"version": "2.7.4.Final", "connector": "postgresql", "name": "postgres", "ts_ms": ts_ms,
           "snapshot": "false", "db": "cdcdb", "sequence": "[\"%d\",\"%d\"]" % (lsn - 8, lsn),
           "ts_us": ts_ms * 1000, "ts_ns": ts_ms * 1_000_000, "schema": "public", "table": "customers",
           "txId": txid, "lsn": lsn, "xmin": None}
    payload = {"before": before, "after": after, "source": src, "transaction": None, "op": op,
               "ts_ms": ts_ms + 3, "ts_us": (ts_ms + 3) * 1000, "ts_ns": (ts_ms + 3) * 1_000_000}
    return json.dumps({"schema": VALUE_SCHEMA, "payload": payload}, separators=(",", ":")).encode()


def key_bytes(cid):
    return json.dumps({"schema": KEY_SCHEMA, "payload": {"customer_id": cid}}, separators=(",", ":")).encode()


class Model:
    """Generates change events over keys 1..nkeys and remembers what the table must end up as.

    live[cid] is the image of a live key, gone[cid] the LSN of the delete of a key that is deleted
    now; history[cid] the (lsn, op) of every event produced for the key, in order."""

    def __init__(self, nkeys, seed, start_lsn=30_000_000, image=None):
        self.rnd = random.Random(seed)
        self.image = image or customer_image     # (cid, lsn, rnd) -> row
        self.nkeys = nkeys
        self.lsn = start_lsn
        self.txid = 1000
        self.live = {}
        self.gone = {}
        self.history = {}
        self.count = {"c": 0, "u": 0, "d": 0}

    def _next(self):
        self.lsn += self.rnd.randint(8, 400)
        self.txid += 1
        return self.lsn, self.txid

    def event(self, cid=None, op=None):
        """(key bytes, value bytes, cid, op, lsn) of the next change."""
        if cid is None:
            cid = self.rnd.randint(1, self.nkeys)
        if op is None:
            if cid not in self.live:
                op = "c"
            else:
                op = "d" if self.rnd.random() < 0.15 else "u"
        lsn, txid = self._next()
        if op == "c":
            assert cid not in self.live
            after = self.image(cid, lsn, self.rnd)
            v = envelope("c", None, after, lsn, txid)
            self.live[cid] = after
            self.gone.pop(cid, None)
        elif op == "u":
            before = self.live[cid]
            after = self.image(cid, lsn, self.rnd)
            v = envelope("u", before, after, lsn, txid)
            self.live[cid] = after
        else:
            before = self.live.pop(cid)
            v = envelope("d", before, None, lsn, txid)
            self.gone[cid] = lsn
        self.count[op] += 1
        self.history.setdefault(cid, []).append((lsn, op))
        return key_bytes(cid), v, cid, op, lsn

    def final_lsn(self):
        """{cid: LSN of the image a mirror must hold} of every live key."""
        return {cid: lsn_of_email(img["email"]) for cid, img in self.live.items()}


# ------------------------------------------------------------------ Kafka

def create_topic(name, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    fut = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=30)
    for f in fut.values():
        f.result(60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(name, timeout=10).topics.get(name)
        if md is not None and md.error is None and len(md.partitions) == partitions:
            return
        time.sleep(0.2)
    raise RuntimeError("topic %s not ready" % name)


def delete_topics(names):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [t for n in names for t in (n, n + ".dlq") if t in existing]
    if doomed:
        for f in admin.delete_topics(doomed, operation_timeout=30).values():
            try:
                f.result(60)
            except Exception:  # noqa: BLE001 - cleanup only
                pass


def producer():
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": KAFKA_BOOTSTRAP, "enable.idempotence": True,
                     "linger.ms": 5, "partitioner": "murmur2_random"})


def produce_ops(topic, model, ops):
    """Produces one event of `model` per item of ops (keyword arguments of Model.event: {} for a
    random change, {"cid": 7, "op": "u"} for a given one), with one producer, and waits for all."""
    p = producer()
    for kw in ops:
        k, v, *_ = model.event(**kw)
        p.produce(topic, key=k, value=v)
        p.poll(0)
    assert p.flush(60) == 0, "producer did not flush"


def produce_batch(topic, model, n):
    """Produces n random events of `model` synchronously."""
    produce_ops(topic, model, [{}] * n)


def end_offsets(topic, partitions):
    """{partition: high watermark}."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": "scaleout-wm-" + uuid.uuid4().hex})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()


class ProducerThread(threading.Thread):
    """Keeps producing events of `model` at about `rate` per second until stop()."""

    def __init__(self, topic, model, rate):
        super().__init__(daemon=True)
        self.topic, self.model, self.rate = topic, model, rate
        self._halt = threading.Event()
        self.produced = 0
        self.error = None
        self.lock = threading.Lock()

    def run(self):
        try:
            p = producer()
            t0 = time.monotonic()
            while not self._halt.is_set():
                due = int((time.monotonic() - t0) * self.rate) - self.produced
                for _ in range(max(0, min(due, 50))):
                    with self.lock:
                        k, v, *_ = self.model.event()
                    p.produce(self.topic, key=k, value=v)
                    self.produced += 1
                p.poll(0)
                time.sleep(0.02)
            if p.flush(60) != 0:
                raise RuntimeError("producer did not flush")
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def stop(self, timeout=90):
        self._halt.set()
        self.join(timeout)
        assert not self.is_alive(), "producer thread did not stop"
        assert self.error is None, "producer failed: %r" % (self.error,)


# ------------------------------------------------------------------ cdcflow processes

class Proc:
    """One cdcflow process of the test, its stderr in a log file; several lives (restarts) append
    to the same log with a banner.  env: the process environment (None: the test's)."""

    def __init__(self, name, argv, log_path, env=None):
        self.name, self.argv, self.log_path, self.env = name, argv, str(log_path), env
        self.p = None
        self.stopped = False     # SIGSTOPped now
        self.lives = 0
        self.exits = []          # (returncode, how it was stopped)

    def start(self):
        assert self.p is None or self.p.poll() is not None
        self.lives += 1
        with open(self.log_path, "a") as f:
            f.write("==== %s life %d: %s\n" % (self.name, self.lives, " ".join(self.argv)))
        self._log = open(self.log_path, "a")
        self.p = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=self.env)
        self.stopped = False

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.stopped = False

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout=30):
        """SIGTERM (after SIGCONT if paused); SIGKILL if it does not exit in time. Returns rc."""
        if not self.alive():
            return self.p.returncode if self.p else None
        if self.stopped:
            self.resume()
        self.p.send_signal(signal.SIGTERM)
        rc = self.wait(timeout)
        how = "sigterm"
        if rc is None:
            self.p.kill()
            rc = self.p.wait(10)
            how = "sigterm-timeout-kill"
        self.exits.append((rc, how))
        self._log.close()
        return rc

    def kill(self):
        if not self.alive():
            return
        self.p.kill()
        self.p.wait(10)
        self.exits.append((self.p.returncode, "sigkill"))
        self._log.close()

    def reap(self):
        """Records an exit that happened on its own."""
        if self.p is not None and self.p.poll() is not None and not self._log.closed:
            self.exits.append((self.p.returncode, "exited"))
            self._log.close()

    def tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return ""
        return "".join(lines[-n:])


def run_once(argv, log_path, timeout, env=None):
    """Runs cdcflow to completion with its output appended to log_path; returns the returncode."""
    with open(log_path, "a") as f:
        f.write("==== run: %s\n" % " ".join(argv))
        f.flush()
        r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT, env=env)
    return r.returncode


def tail(path, n=60):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""
