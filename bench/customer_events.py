"""customer_events.py - Debezium change events of SYSTEM.md's customers table, one JSON per line, for
the benchmarks: 85% creates, 10% updates of a live key, 5% deletes, seeded and reproducible.

    python3 bench/customer_events.py OUT N [--seed S] [--lsn-start L] [--lsn-step D] [--vary]

--vary spreads registration_date and is_active over the keys (the Iceberg bench, whose partition
and bound statistics want them spread); without it they are constant."""
import argparse
import json
import random

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("n", type=int)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--lsn-start", type=int, default=1000)
ap.add_argument("--lsn-step", type=int, default=3)
ap.add_argument("--vary", action="store_true")
a = ap.parse_args()

rnd = random.Random(a.seed)
live, lsn = [], a.lsn_start
with open(a.out, "w") as f:
    for i in range(a.n):
        lsn += a.lsn_step
        r = rnd.random()
        if live and r < 0.05:
            k = live.pop(rnd.randrange(len(live))); op = "d"
        elif live and r < 0.15:
            k = live[rnd.randrange(len(live))]; op = "u"
        else:
            k = i + 1; live.append(k); op = "c"
        row = {"customer_id": k, "email": "u%d@example.com" % k, "first_name": "F%d" % (k % 997),
               "last_name": "L%d" % (k % 991), "phone": None, "address_line1": "1 Main St",
               "city": "City%d" % (k % 50), "state": "ST", "postal_code": "12345", "country": "US",
               "registration_date": 1700000000000000 + (k * 1000000 if a.vary else 0),
               "last_updated": 1700000000000000 + i,
               "is_active": k % 3 != 0 if a.vary else True, "customer_tier": "gold", "lifetime_value": "12.34"}
        ev = {"before": row if op == "d" else None, "after": None if op == "d" else row,
              "source": {"version": "2.7.4.Final" if a.vary else "2.7.0", "connector": "postgresql",
                         "name": "postgres", "ts_ms": 1700000000000 + i, "db": "cdcdb", "schema": "public",
                         "table": "customers", "lsn": lsn}, "op": op, "ts_ms": 1700000000000 + i}
        f.write(json.dumps(ev, separators=(",", ":")) + "\n")
