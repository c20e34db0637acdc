#!/usr/bin/env bash
# freshness.sh - PostgreSQL commit -> row readable in the table, p50/p99, for Delta and Iceberg in
# append and upsert mode at a 1 s and a 200 ms trigger (FRESH_TRIGGERS), on the real stack (Debezium,
# Kafka), split into Debezium's share and cdcflow's.  Prints figures.
set -u
cd "$(dirname "$0")/.."
if ! scripts/stack.sh status >/dev/null 2>&1; then
    echo "freshness: the stack is not running (scripts/stack.sh start); skipped"
    exit 0
fi
build/cdcflow connector status >/dev/null 2>&1 || build/cdcflow connector register >/dev/null || exit 1
for trigger in ${FRESH_TRIGGERS:-1s 200ms}; do
    for sink in delta iceberg; do
        for mode in append upsert; do
            .venv/bin/python bench/freshness.py "$sink" "$mode" --changes "${FRESH_CHANGES:-60}" --trigger "$trigger" ||
                echo "freshness $sink $mode $trigger: failed"
        done
    done
done
