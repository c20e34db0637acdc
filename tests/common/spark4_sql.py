"""spark4_sql.py - run Spark SQL statements with the newest Spark set (Spark 4.1, Delta 4.4, Iceberg 1.12)
from a test whose own interpreter has the pinned set: the integration tests run in .venv (pyspark 3.5),
while pyspark 4.1 lives in .venv-newest.  A separate process, so the two never meet in one JVM.

    .venv-newest/bin/python tests/common/spark4_sql.py SCRATCH_DIR 'SQL' ['SQL' ...]

Each statement runs in order; the rows of the last one are printed to stdout as one JSON object per line
(values made JSON-safe with str() where they are not).  Exit 0 on success, 1 with the error on stderr."""
import glob
import json
import os
import pathlib
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JARS = os.environ.get("CF_SPARK4_JARS", os.path.join(ROOT, ".cache", "spark4", "jars"))


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from spark_session import local_session
    jars = sorted(glob.glob(os.path.join(JARS, "*.jar")))
    if not jars:
        print("spark4_sql: no jars in %s (scripts/setup.sh readers fetches them)" % JARS, file=sys.stderr)
        return 1
    if not os.environ.get("JAVA_HOME") and os.path.isdir("/usr/lib/jvm/java-17-openjdk-amd64"):
        os.environ["JAVA_HOME"] = "/usr/lib/jvm/java-17-openjdk-amd64"
    spark = local_session("cdcflow-spark4-sql", jars, pathlib.Path(argv[1]),
                          {"spark.databricks.delta.stats.collect": "true"})
    try:
        df = None
        for stmt in argv[2:]:
            df = spark.sql(stmt)
        for r in df.collect():
            print(json.dumps({k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
                              for k, v in r.asDict().items()}))
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
