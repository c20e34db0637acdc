#!/usr/bin/env bash
# parquet.sh - cdcflow's Parquet writer/reader against pyarrow on SYSTEM.md's
# transformed customers schema: rows/s, MB/s and file sizes (never asserts).
# PARQUET_BENCH_ROWS overrides the row count (default 10M).
set -eu
cd "$(dirname "$0")/.."
rows=${PARQUET_BENCH_ROWS:-10000000}
dir=$(mktemp -d /tmp/cdcflow-parquet-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
[ -x build/bench/bench_parquet ] || make -s build/bench/bench_parquet
build/bench/bench_parquet bench "$rows" "$dir"
if [ -x .venv/bin/python ] && .venv/bin/python -c 'import pyarrow' 2>/dev/null; then
    .venv/bin/python bench/parquet_pyarrow.py "$dir/cdcflow.parquet" "$dir"
else
    echo "pyarrow peer skipped: .venv with pyarrow missing"
fi
