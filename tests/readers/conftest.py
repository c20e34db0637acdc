"""conftest.py - the newest readers (.venv-newest, tests/requirements-newest.txt): DuckDB with its
extensions from their PyPI packages, where Spark 4.1's Delta and Iceberg jars are
(deploy/spark4/pom.xml), and the versions line printed at the start and end of a run.

Nothing here needs Kafka or PostgreSQL: the tables come from build/cdcflow with file sources.
"""

import glob
import importlib
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CDCFLOW = os.environ.get("CF_CDCFLOW", os.path.join(ROOT, "build", "cdcflow"))

DUCKDB_EXTENSIONS = ("avro", "delta", "iceberg")
SPARK4_JARS = os.environ.get("CF_SPARK4_JARS", os.path.join(ROOT, ".cache", "spark4", "jars"))


def spark4_jar_version(name):
    """Version of the jar <name>-<version>.jar in SPARK4_JARS (name may hold a *), or None."""
    for j in sorted(glob.glob(os.path.join(SPARK4_JARS, name + "-[0-9]*.jar"))):
        return os.path.basename(j)[:-len(".jar")].rsplit("-", 1)[1]
    return None


def spark_versions():
    try:
        import pyspark
    except ImportError:
        return "pyspark not installed"
    delta = spark4_jar_version("delta-spark_*")
    iceberg = spark4_jar_version("iceberg-spark-runtime-*")
    return f"spark {pyspark.__version__} with delta-spark {delta}, iceberg-spark-runtime {iceberg}"


def reader_versions():
    import deltalake
    import duckdb
    import pyarrow
    import pyiceberg
    return (f"deltalake {deltalake.__version__}, duckdb {duckdb.__version__}, "
            f"pyiceberg {pyiceberg.__version__}, pyarrow {pyarrow.__version__}, {spark_versions()}")


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pyiceberg.*")


def pytest_sessionstart(session):
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line("newest readers: " + reader_versions())


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line("newest readers: " + reader_versions())


@pytest.fixture(autouse=True)
def _print_reader_versions():
    # In each test's captured output, so a failure report says which readers failed.
    print("newest readers: " + reader_versions())


# ----------------------------------------------------------------- DuckDB

def duckdb_extension_path(name):
    """Path of the <name>.duckdb_extension file shipped by PyPI package duckdb-extension-<name>."""
    import duckdb

    mod = importlib.import_module("duckdb_extension_" + name)
    base = os.path.join(os.path.dirname(mod.__file__), "extensions")
    want = os.path.join(base, "v" + duckdb.__version__, name + ".duckdb_extension")
    if os.path.exists(want):
        return want
    found = sorted(glob.glob(os.path.join(base, "v*", name + ".duckdb_extension")))
    raise RuntimeError(
        f"duckdb {duckdb.__version__} has no matching {name} extension (package has {found}); "
        "keep the duckdb and duckdb-extension-* pins in tests/requirements-newest.txt equal")


def duckdb_conn(database=":memory:"):
    """A DuckDB connection with the avro, delta and iceberg extensions loaded from their PyPI packages;
    autoinstall off, so a missing extension fails at once instead of trying the network."""
    import duckdb

    con = duckdb.connect(database, config={"autoinstall_known_extensions": False})
    try:
        for name in DUCKDB_EXTENSIONS:
            con.execute(f"LOAD '{duckdb_extension_path(name)}'")
    except Exception:
        con.close()
        raise
    return con


@pytest.fixture
def ddb():
    con = duckdb_conn()
    yield con
    con.close()
