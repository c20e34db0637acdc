#!/usr/bin/env bash
# freshness.sh - PostgreSQL commit -> row readable in the table, p50/p99, for Delta and Iceberg in
# append and upsert mode with a 1 s trigger, on the real stack (Debezium, Kafka).  Prints figures.
set -u
cd "$(dirname "$0")/.."
if ! scripts/stack.sh status >/dev/null 2>&1; then
    echo "freshness: the stack is not running (scripts/stack.sh start); skipped"
    exit 0
fi
build/cdcflow connector status >/dev/null 2>&1 || build/cdcflow connector register >/dev/null || exit 1
for sink in delta iceberg; do
    for mode in append upsert; do
        .venv/bin/python bench/freshness.py "$sink" "$mode" --changes "${FRESH_CHANGES:-60}" --trigger 1s ||
            echo "freshness $sink $mode: failed"
    done
done
