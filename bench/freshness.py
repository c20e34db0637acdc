"""freshness.py - end-to-end freshness: from a PostgreSQL COMMIT to the row being readable in the
table cdcflow writes (through Debezium, Kafka and `cdcflow delta|iceberg`), p50/p99/max.

Usage: freshness.py delta|iceberg append|upsert [--changes N] [--rate R] [--trigger 1s]

It starts its own pipeline on a fresh table in a temp dir, waits until it has caught up with the
topic, then commits N single-row changes at R per second to rows it owns (a block of customer
ids), each stamped with a unique email, and watches the table: a watcher notices each new table
version (Delta: a new _delta_log/N.json; Iceberg: a new version-hint) and reads the rows it added.
Freshness of a change = the time the table version holding its row was written (the modification
time of the Delta log entry or the Iceberg metadata file: the watcher may read it later) minus its
commit time, split at the row's
_kafka_timestamp (when Connect produced the message) into Debezium's share (COMMIT -> Kafka) and
cdcflow's (Kafka -> readable).  With the table, the log commits per minute (Delta: log entries;
Iceberg: snapshots) and data files per minute that the trigger implies.  Prints figures; never fails
on speed.
"""

import argparse
import datetime
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CDCFLOW = os.path.join(ROOT, "build", "cdcflow")
PG = dict(host="127.0.0.1", port=5432, dbname="cdcdb", user="cdcuser", password="cdcpass")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def kafka_rows(t, now):
    """(email, _kafka_timestamp as epoch seconds, now) of an Arrow table's rows that have an email."""
    out = []
    for e, k in zip(t.column("email").to_pylist(), t.column("_kafka_timestamp").to_pylist()):
        if e:
            if k is not None and k.tzinfo is None:
                k = k.replace(tzinfo=datetime.timezone.utc)
            out.append((e, k.timestamp() if k is not None else None, now))
    return out


class DeltaWatcher:
    def __init__(self, path):
        self.log = os.path.join(path, "_delta_log")
        self.next = 0

        self.files = 0

    def poll(self):
        """(email, Kafka timestamp in s, time the version was seen) of rows added by versions that
        appeared since the last poll."""
        import pyarrow.parquet as pq
        out = []
        while True:
            f = os.path.join(self.log, "%020d.json" % self.next)
            if not os.path.exists(f):
                return out
            now = os.stat(f).st_mtime      # when the version became readable, however late we look
            for line in open(f):
                a = json.loads(line).get("add")
                if a:
                    self.files += 1
                    t = pq.read_table(os.path.join(os.path.dirname(self.log), a["path"]),
                                      columns=["email", "_kafka_timestamp"])
                    out.extend(kafka_rows(t, now))
            self.next += 1

    def commits(self):
        return self.next


class IcebergWatcher:
    def __init__(self, path):
        self.hint = os.path.join(path, "metadata", "version-hint.text")
        self.meta = os.path.join(path, "metadata")
        self.seen = None
        self.snap = None
        self.nsnaps = 0
        self.files = 0

    def poll(self):
        from pyiceberg.table import StaticTable
        try:
            v = open(self.hint).read().strip()
            now = os.stat(os.path.join(self.meta, "v%s.metadata.json" % v)).st_mtime
        except OSError:
            return []
        if v == self.seen:
            return []
        self.seen = v
        t = StaticTable.from_metadata(os.path.join(self.meta, "v%s.metadata.json" % v))
        snap = t.metadata.current_snapshot_id
        if snap is None or snap == self.snap:
            return []
        self.snap = snap
        self.nsnaps = len(t.metadata.snapshots)
        self.files = sum(int(s.summary.additional_properties.get("added-data-files", 0) or 0)
                         for s in t.metadata.snapshots if s.summary)
        rows = t.scan(row_filter="email LIKE 'fresh-%'", selected_fields=("email", "_kafka_timestamp")).to_arrow()
        return kafka_rows(rows, now)

    def commits(self):
        return self.nsnaps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sink", choices=("delta", "iceberg"))
    ap.add_argument("mode", choices=("append", "upsert"))
    ap.add_argument("--changes", type=int, default=60)   # at most 400
    ap.add_argument("--rate", type=float, default=4.0)
    ap.add_argument("--trigger", default="1s")
    a = ap.parse_args()

    import psycopg2
    tmp = tempfile.mkdtemp(prefix="cdcflow-fresh-")
    tag = "%d" % random.randrange(10 ** 9)
    if a.sink == "delta":
        table = os.path.join(tmp, "customers")
        loc = ["--table-path", table]
        watcher = DeltaWatcher(table)
    else:
        table = os.path.join(tmp, "wh", "bench", "customers")
        loc = ["--warehouse", os.path.join(tmp, "wh"), "--namespace", "bench", "--table", "customers"]
        watcher = IcebergWatcher(table)
    cmd = [CDCFLOW, a.sink, "--bootstrap", "127.0.0.1:9092", "--topic", "postgres.public.customers",
           "--mode", a.mode, "--trigger-interval", a.trigger, "--metrics-port", "0",
           "--group-id", "cdcflow-bench-fresh-" + tag, "--checkpoint-location", os.path.join(tmp, "ck"),
           "--log-level", "warn"] + loc
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "log"), "w"))
    conn = psycopg2.connect(**PG)
    conn.autocommit = True
    cur = conn.cursor()
    base = 9_500_000 + random.randrange(0, 400) * 1000
    cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (base, base + 1000))
    try:
        # Rows the upsert updates: distinct keys, so no change supersedes another in one batch.
        for i in range(a.changes):
            cur.execute("INSERT INTO customers (customer_id, email, first_name, last_name, customer_tier) "
                        "VALUES (%s, %s, 'Fresh', 'Ness', 'bronze')", (base + 1 + i, "pre-%d@example.com" % i))
        # Caught up: a warm-up row of ours is visible.
        warm = "fresh-warm-%s@example.com" % tag
        cur.execute("INSERT INTO customers (customer_id, email, first_name, last_name, customer_tier) "
                    "VALUES (%s, %s, 'Fresh', 'Ness', 'bronze')", (base, warm))
        deadline = time.time() + 300
        while warm not in (r[0] for r in watcher.poll()):
            if proc.poll() is not None or time.time() > deadline:
                sys.exit("freshness: pipeline did not catch up (see %s/log)" % tmp)
            time.sleep(0.05)

        committed = {}
        seen = {}
        kafka_ts = {}
        stop = threading.Event()
        c0, f0, t0 = watcher.commits(), watcher.files, time.time()

        def watch():
            while not stop.is_set():
                # the time a version was written, not when the watcher read it: a poll that reads
                # several versions takes time
                for e, k, now in watcher.poll():
                    seen.setdefault(e, now)
                    kafka_ts.setdefault(e, k)
                time.sleep(0.02)

        th = threading.Thread(target=watch)
        th.start()
        for i in range(a.changes):
            email = "fresh-%s-%d@example.com" % (tag, i)
            if a.mode == "upsert" and i % 2:
                cur.execute("UPDATE customers SET email = %s WHERE customer_id = %s", (email, base + 1 + i))
            else:
                cur.execute("INSERT INTO customers (customer_id, email, first_name, last_name, customer_tier) "
                            "VALUES (%s, %s, 'Fresh', 'Ness', 'bronze')", (base + 500 + i, email))
            committed[email] = time.time()          # autocommit: returned after COMMIT
            # (upsert: half inserts of new keys, half updates of distinct existing keys)
            time.sleep(1.0 / a.rate)
        deadline = time.time() + 60
        while len([e for e in committed if e in seen]) < len(committed) and time.time() < deadline:
            time.sleep(0.1)
        stop.set()
        th.join()
        minutes = (time.time() - t0) / 60.0
        lat = [seen[e] - t for e, t in committed.items() if e in seen]
        dbz = [kafka_ts[e] - t for e, t in committed.items() if kafka_ts.get(e) is not None]
        ours = [seen[e] - kafka_ts[e] for e in committed if e in seen and kafka_ts.get(e) is not None]
        missing = len(committed) - len(lat)
        print("freshness %-7s %-6s trigger=%s changes=%d  p50=%.2fs p99=%.2fs max=%.2fs  "
              "debezium p50=%.2fs p99=%.2fs  cdcflow p50=%.2fs p99=%.2fs  %.0f commits/min %.0f files/min%s" % (
                  a.sink, a.mode, a.trigger, len(committed), pct(lat, 50), pct(lat, 99), max(lat),
                  pct(dbz, 50), pct(dbz, 99), pct(ours, 50), pct(ours, 99),
                  (watcher.commits() - c0) / minutes, (watcher.files - f0) / minutes,
                  ("  NOT SEEN: %d" % missing) if missing else ""))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        cur.execute("DELETE FROM customers WHERE customer_id >= %s AND customer_id < %s", (base, base + 1000))
        conn.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
