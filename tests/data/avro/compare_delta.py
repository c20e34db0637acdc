#!/usr/bin/env python3
"""compare_delta.py - two Delta tables hold the same rows, type for type,
read by delta-rs (not by cdcflow): the table cdcflow wrote from the Avro
topic and the one from the JSON topic of the same changes.  Columns that
depend on when cdcflow or Kafka saw the message are left out.

    compare_delta.py AVRO_TABLE JSON_TABLE   -> prints the row count, exit 0 if equal"""
import sys

from deltalake import DeltaTable

WHEN = ["_ingestion_timestamp", "_processed_timestamp", "_kafka_timestamp"]


def rows(path):
    t = DeltaTable(path).to_pyarrow_table()
    return t.drop_columns(WHEN).sort_by([("_source_lsn", "ascending")])


a, j = rows(sys.argv[1]), rows(sys.argv[2])
if a.schema != j.schema:
    sys.exit("schemas differ:\n%s\n--\n%s" % (a.schema, j.schema))
if a.to_pylist() != j.to_pylist():
    sys.exit("rows differ:\n%s\n--\n%s" % (a.to_pylist(), j.to_pylist()))
print(a.num_rows)
