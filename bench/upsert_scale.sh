#!/usr/bin/env bash
# upsert_scale.sh - what one upsert commit of 10,000 updates to random existing keys costs as the
# Delta table grows: copy-on-write (files holding a changed key rewritten) beside deletion vectors
# (rows marked, files kept).  Per table size and mode: the first commit (which builds the key
# index), the steady commit time, the bytes it writes and peak RSS.  Sizes from
# UPSERT_SCALE_SIZES (default "1000000 4000000"; 10000000 takes about a minute per mode and 1.5 GB
# of RAM in copy-on-write).  Prints figures; never fails on speed.
set -u
cd "$(dirname "$0")/.."
make -s -j2 build/bench/bench_delta >/dev/null || exit 1
out=$(mktemp -d /tmp/cdcflow-bench-upsert.XXXXXX)
trap 'rm -rf "$out"' EXIT
N=${UPSERT_SCALE_UPDATES:-10000}

for size in ${UPSERT_SCALE_SIZES:-1000000 4000000}; do
    rm -rf "$out/base"
    build/bench/bench_delta gen --out "$out/base" --mode append --events "$size" --batch 100000 >/dev/null || exit 1
    for mode in rewrite dv; do
        rm -rf "$out/t"
        cp -r "$out/base" "$out/t"
        build/bench/bench_delta update --out "$out/t" --mode upsert --keys "$size" --events "$N" --rounds 3 \
            --delta-deletes "$mode" 2>/dev/null |
            awk -v size="$size" -v mode="$mode" '
                / round 1:/ { first = $7 }
                / round [23]:/ { t += $7; mb += $9; n++; rss = $14 }
                END { printf "delta %-7s %9d keys: first commit %.3f s, then %.3f s and %.2f MB per commit, peak RSS %d MiB\n",
                             mode, size, first, t / n, mb / n, rss }'
    done
done
