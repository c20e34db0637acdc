#!/usr/bin/env bash
# bench.sh - run every bench/*.sh in order; each prints its own figures.
# Benchmarks report numbers; they never pass or fail on time.
set -u
cd "$(dirname "$0")/.."
rc=0
for b in bench/*.sh; do
    [ -e "$b" ] || continue
    # A million Kafka messages read six times over: its own target, make bench-kafka.
    [ "$b" = bench/kafka.sh ] && continue
    echo "== $b"
    bash "$b" || { echo "bench $b failed (exit $?)"; rc=1; }
done
exit $rc
