"""spark_session.py - the local Spark session every Spark reader test starts (the pinned Spark 3.5 set of
tests/integration and the Spark 4.1 set of tests/readers): Delta's and Iceberg's extensions, on loopback,
tuned for small tables.  Needs only pyspark, imported when a session is made."""
import os


def local_session(app, jars, scratch, conf=None):
    """A local[2] Spark session on loopback with Delta's and Iceberg's extensions, tuned for small
    tables; `conf` adds or overrides settings.  The caller stops it."""
    # Spark picks its address from the host name unless told; everything stays on loopback.
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession

    settings = {
        "spark.jars": ",".join(jars),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": "768m",
        # A short-lived JVM reading small tables: the quick JIT tier and no code generation start
        # answering sooner than the optimizing compilers pay back.
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        "spark.sql.codegen.wholeStage": "false",
        # Re-planning pays off on big shuffles, not on these: each query would plan twice.
        "spark.sql.adaptive.enabled": "false",
        # Statistics of the files Spark itself writes (one test); cdcflow's are what reads skip with.
        "spark.databricks.delta.stats.collect": "false",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        # Delta rebuilds a snapshot from its log with this many tasks (50 by default): tiny logs here.
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(scratch / "warehouse"),
        "spark.local.dir": str(scratch / "local"),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension,"
                                "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    }
    settings.update(conf or {})
    b = SparkSession.builder.master("local[2]").appName(app)
    for k, v in settings.items():
        b = b.config(k, v)
    session = b.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session

