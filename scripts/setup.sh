#!/usr/bin/env bash
# setup.sh - install what cdcflow needs to build, test and demo: Debian packages, the pinned Kafka/Debezium jars,
# and the Python venvs of the tests.  Idempotent: a second run checks and does nothing (~1 s).
#
# Debian 12 as root (apt-get).  Jars come from Maven Central through mvn into .cache/stack/ (Kafka,
# Debezium, Apicurio's Avro converter and schema registry, the Iceberg REST catalog) and, for Spark, .cache/spark/jars (Spark 3.5, the pinned set) and
# .cache/spark4/jars (Spark 4.1, the newest set; Maven's own cache is ~/.m2).
# The venvs: .venv from tests/requirements.txt (integration tests), .venv-newest from
# tests/requirements-newest.txt (the newest readers, tests/readers).
# `setup.sh readers` does only what `make test-readers` needs; `setup.sh stack` only the stack's jars
# (scripts/stack.sh: Kafka, Debezium, the Apicurio converter and registry, the Iceberg REST catalog).  Each step says what it does and
# stops with a clear message when it fails.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=$ROOT/.cache/stack
VENV=$ROOT/.venv
REQ=$ROOT/tests/requirements.txt
VENV_NEWEST=$ROOT/.venv-newest
REQ_NEWEST=$ROOT/tests/requirements-newest.txt

# Build deps (C libraries + tools), the stack (PostgreSQL, JDK + Maven for the jars, kcat), the venv's
# python, and the small tools the scripts call (curl, ss, runuser, xxd).
DEB_PKGS="gcc make pkg-config librdkafka-dev libzstd-dev libsnappy-dev zlib1g-dev libjansson-dev libpq-dev
  libcurl4-openssl-dev libmicrohttpd-dev clang libclang-rt-14-dev
  postgresql-15 postgresql-client-15 openjdk-17-jdk-headless maven kcat
  python3 python3-venv curl iproute2 util-linux procps ca-certificates xxd"

say()  { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Of the files' contents only, not their paths: worktrees share .cache, and a stamp that named the
# path made each checkout refetch what another had just fetched.
sha() { cat "$@" | sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- Debian packages

deb_missing() {
    local p missing=()
    for p in $DEB_PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    printf '%s\n' "${missing[@]}"
}

step_debian() {
    command -v dpkg-query >/dev/null 2>&1 || fail "dpkg-query not found: this script expects Debian 12"
    local missing
    missing=$(deb_missing | xargs)
    if [ -z "$missing" ]; then
        say "debian packages: all present"
        return
    fi
    [ "$(id -u)" -eq 0 ] || fail "missing Debian packages: $missing
  install them as root: apt-get update && apt-get install -y $missing"
    # The postgresql package would create and start its own cluster on port 5432, the port of the
    # project's cluster (scripts/stack.sh).  Ask it not to, before it is installed.
    if ! dpkg-query -W -f='${Status}' postgresql-common 2>/dev/null | grep -q 'ok installed'; then
        mkdir -p /etc/postgresql-common
        [ -e /etc/postgresql-common/createcluster.conf ] ||
            echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    say "debian packages: installing $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/tmp/cdcflow-apt.log 2>&1 || { tail -20 /tmp/cdcflow-apt.log >&2; fail "apt-get update failed"; }
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >>/tmp/cdcflow-apt.log 2>&1 ||
        { tail -30 /tmp/cdcflow-apt.log >&2; fail "apt-get install failed (full log: /tmp/cdcflow-apt.log)"; }
    missing=$(deb_missing | xargs)
    [ -z "$missing" ] || fail "still missing after apt-get install: $missing"
    say "debian packages: installed"
}

# ---------------------------------------------------------------- jars

# copy_jars NAME POM OUTDIR [mvn args...] : mvn dependency:copy-dependencies, skipped while the pom is unchanged.
copy_jars() {
    local name=$1 pom=$2 out=$3; shift 3
    local stamp=$out/.pom.sha want
    want=$(sha "$pom")
    if [ -s "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$out"/*.jar >/dev/null 2>&1; then
        say "$name jars: present ($(ls "$out"/*.jar | wc -l) in ${out#"$ROOT"/})"
        return
    fi
    command -v mvn >/dev/null 2>&1 || fail "mvn not found (package maven)"
    say "$name jars: fetching with mvn from $(basename "$(dirname "$pom")")/pom.xml into ${out#"$ROOT"/}"
    rm -rf "$out.tmp"
    mkdir -p "$(dirname "$out")"
    if ! mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$out.tmp" "$@" >"$CACHE/mvn-$name.log" 2>&1; then
        tail -30 "$CACHE/mvn-$name.log" >&2
        fail "mvn could not fetch the $name jars (log: $CACHE/mvn-$name.log); is Maven Central reachable?"
    fi
    rm -rf "$out"
    mv "$out.tmp" "$out"
    echo "$want" >"$stamp"
    say "$name jars: $(ls "$out"/*.jar | wc -l) jars"
}

step_jars() {
    mkdir -p "$CACHE"
    copy_jars kafka "$ROOT/deploy/kafka/pom.xml" "$CACHE/kafka/libs"
    # Kafka's and SLF4J's jars come from the worker; a second copy in the plugin folder is dead weight
    # at best and a class clash at worst.
    copy_jars debezium "$ROOT/deploy/debezium/pom.xml" "$CACHE/plugins/debezium-connector-postgres" \
        -DexcludeGroupIds=org.apache.kafka,org.slf4j
    # Same library, other version (jackson, checker-qual): the worker's copy is the one that loads.
    local j base dups=()
    for j in "$CACHE"/plugins/debezium-connector-postgres/*.jar; do
        base=$(basename "$j" | sed -E 's/-[0-9][^-]*(\.Final|-GA)?\.jar$//')
        if ls "$CACHE/kafka/libs/$base"-[0-9]*.jar >/dev/null 2>&1; then
            dups+=("$(basename "$j")"); rm -f "$j"
        fi
    done
    [ ${#dups[@]} -eq 0 ] || say "debezium jars: dropped those the Kafka worker already has: ${dups[*]}"
    ls "$CACHE"/plugins/debezium-connector-postgres/debezium-connector-postgres-*.jar >/dev/null 2>&1 ||
        fail "the Debezium connector jar is missing from $CACHE/plugins"
    # Apicurio's Avro converter, for the connector that publishes Avro (cdcflow connector register
    # --format avro).  Its jars go into the Debezium plugin folder, as Debezium's own images do: Kafka
    # Connect 4.3 then finds the converter with the connector's class loader, where validating a new
    # connector's config refused it as "could not be found" from a plugin folder of its own.  Fetched
    # beside the plugins; those the worker has are left out, as above.
    local conv=$CACHE/apicurio-converter/libs dbz=$CACHE/plugins/debezium-connector-postgres list
    copy_jars apicurio-converter "$ROOT/deploy/apicurio-converter/pom.xml" "$conv" \
        -DexcludeGroupIds=org.apache.kafka,org.slf4j
    list=$dbz/.apicurio-converter-jars
    if [ -s "$list" ]; then (cd "$dbz" && xargs rm -f <"$list"); fi
    : >"$list"
    dups=()
    for j in "$conv"/*.jar; do
        base=$(basename "$j" | sed -E 's/-[0-9][^-]*(\.Final|-GA)?\.jar$//')
        if ls "$CACHE/kafka/libs/$base"-[0-9]*.jar >/dev/null 2>&1; then
            dups+=("$(basename "$j")"); continue
        fi
        cp -p "$j" "$dbz/" && basename "$j" >>"$list"
    done
    [ ${#dups[@]} -eq 0 ] || say "apicurio-converter jars: left out those the Kafka worker already has: ${dups[*]}"
    rm -rf "$CACHE/plugins/apicurio-converter"   # the separate plugin folder of an earlier layout
    ls "$dbz"/apicurio-registry-utils-converter-*.jar >/dev/null 2>&1 ||
        fail "the Apicurio converter jar is missing from $dbz"
}

# The schema registry of the stack (scripts/stack.sh): Apicurio Registry's own Quarkus distribution (a
# runner jar and its lib/), unpacked from Maven Central by deploy/apicurio-registry/pom.xml.  Skipped
# while the pom is unchanged, like copy_jars.
step_registry() {
    local out=$CACHE/apicurio-registry pom=$ROOT/deploy/apicurio-registry/pom.xml want
    local stamp=$out/.pom.sha
    mkdir -p "$CACHE"
    want=$(sha "$pom")
    if [ -s "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && ls "$out"/*-run*.jar >/dev/null 2>&1; then
        say "apicurio registry: present (${out#"$ROOT"/})"
        return
    fi
    command -v mvn >/dev/null 2>&1 || fail "mvn not found (package maven)"
    say "apicurio registry: fetching with mvn from apicurio-registry/pom.xml into ${out#"$ROOT"/}"
    rm -rf "$out.tmp"
    if ! mvn -B -q -f "$pom" dependency:unpack -DoutputDirectory="$out.tmp" \
            -DmarkersDirectory="$out.tmp.markers" >"$CACHE/mvn-apicurio-registry.log" 2>&1; then
        tail -30 "$CACHE/mvn-apicurio-registry.log" >&2
        fail "mvn could not fetch Apicurio Registry (log: $CACHE/mvn-apicurio-registry.log); is Maven Central reachable?"
    fi
    rm -rf "$out.tmp.markers" "$out.tmp"/PaxHeaders.*
    ls "$out.tmp"/*-run*.jar >/dev/null 2>&1 || fail "no runner jar in the Apicurio Registry distribution ($out.tmp)"
    rm -rf "$out"
    mv "$out.tmp" "$out"
    echo "$want" >"$stamp"
    say "apicurio registry: $(basename "$(ls "$out"/*-run*.jar | head -n1)"), $(ls "$out"/lib | wc -l) jars"
}

# Spark, the third reader of the tests, takes Delta's and Iceberg's jars (and the S3 ones: hadoop-aws with
# its AWS SDK, iceberg-aws-bundle) with spark.jars: it cannot resolve packages itself here.  Spark's own jars come with pyspark (tests/requirements.txt).
step_spark_jars() {
    mkdir -p "$CACHE"
    copy_jars spark "$ROOT/deploy/spark/pom.xml" "$ROOT/.cache/spark/jars"
}

# The newest Spark reader (tests/readers): Spark 4.1's Delta and Iceberg jars from deploy/spark4/pom.xml,
# a set of their own beside Spark 3.5's.  Spark 4.1's own jars come with pyspark (tests/requirements-newest.txt).
step_spark4_jars() {
    mkdir -p "$CACHE"
    copy_jars spark4 "$ROOT/deploy/spark4/pom.xml" "$ROOT/.cache/spark4/jars"
}

# The Iceberg REST catalog of the stack (scripts/catalog.sh): Apache Iceberg's reference server with
# S3FileIO and a SQLite JDBC catalog, run from its jars.
step_catalog_jars() {
    mkdir -p "$CACHE"
    copy_jars iceberg-rest "$ROOT/deploy/iceberg-rest/pom.xml" "$CACHE/iceberg-rest/libs"
}

# ---------------------------------------------------------------- Python venv

step_venv() {
    local want stamp=$VENV/.requirements.sha py=${PYTHON:-python3}
    want=$(sha "$REQ")
    if [ -x "$VENV/bin/python" ] && [ -s "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        "$VENV/bin/python" -c 'import pytest, pyarrow, duckdb, deltalake, pyiceberg, confluent_kafka, psycopg2, pyspark, delta' 2>/dev/null; then
        say "python venv: up to date (.venv)"
        return
    fi
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        command -v "$py" >/dev/null 2>&1 || fail "$py not found (package python3)"
        say "python venv: creating .venv with $("$py" --version 2>&1)"
        rm -rf "$VENV"
        "$py" -m venv "$VENV" || fail "python3 -m venv failed (package python3-venv)"
    fi
    say "python venv: installing tests/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >"$ROOT/.cache/pip-install.log" 2>&1 ||
        { tail -30 "$ROOT/.cache/pip-install.log" >&2; fail "pip install -r tests/requirements.txt failed"; }
    echo "$want" >"$stamp"
    say "python venv: ready"
}

# The newest readers (tests/readers, `make test-readers`): a venv of its own, so their pins never move
# the integration tests' ones.  Same stamp as .venv: a second run only hashes the file and imports.
step_venv_newest() {
    local want stamp=$VENV_NEWEST/.requirements.sha py=${PYTHON:-python3} log=$VENV_NEWEST/pip-install.log
    want=$(sha "$REQ_NEWEST")
    if [ -x "$VENV_NEWEST/bin/python" ] && [ -s "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        "$VENV_NEWEST/bin/python" -c 'import pytest, pyarrow, duckdb, deltalake, pyiceberg, duckdb_extension_delta, duckdb_extension_iceberg, duckdb_extension_avro, pyspark, delta' 2>/dev/null; then
        say "python venv: up to date (.venv-newest)"
        return
    fi
    if ! "$VENV_NEWEST/bin/python" -c 'import sys' >/dev/null 2>&1; then
        command -v "$py" >/dev/null 2>&1 || fail "$py not found (package python3)"
        say "python venv: creating .venv-newest with $("$py" --version 2>&1)"
        rm -rf "$VENV_NEWEST"
        "$py" -m venv "$VENV_NEWEST" || fail "python3 -m venv failed (package python3-venv)"
    fi
    say "python venv: installing tests/requirements-newest.txt"
    "$VENV_NEWEST/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ_NEWEST" >"$log" 2>&1 ||
        { tail -30 "$log" >&2; fail "pip install -r tests/requirements-newest.txt failed (log: ${log#"$ROOT"/})"; }
    echo "$want" >"$stamp"
    say "python venv: ready (.venv-newest)"
}

# DuckDB's extensions come from PyPI packages; check they load offline as the tests load them.
step_duckdb() {
    local out
    out=$(cd "$ROOT/tests/integration" && "$VENV/bin/python" -c '
from conftest import duckdb_conn
con = duckdb_conn()
print(", ".join(f"{n} {v}" for n, v in con.sql(
    "SELECT extension_name, extension_version FROM duckdb_extensions() WHERE loaded AND extension_name IN (\x27delta\x27, \x27iceberg\x27, \x27avro\x27) ORDER BY 1").fetchall()))
' 2>&1) || { printf '%s\n' "$out" >&2; fail "DuckDB could not load its delta/iceberg extensions"; }
    say "duckdb extensions: loaded $out"
}

step_duckdb_newest() {
    local out
    out=$(cd "$ROOT/tests/readers" && "$VENV_NEWEST/bin/python" -c '
from conftest import duckdb_conn
con = duckdb_conn()
print(", ".join(f"{n} {v}" for n, v in con.sql(
    "SELECT extension_name, extension_version FROM duckdb_extensions() WHERE loaded AND extension_name IN (\x27delta\x27, \x27iceberg\x27, \x27avro\x27) ORDER BY 1").fetchall()))
' 2>&1) || { printf '%s\n' "$out" >&2; fail "DuckDB (.venv-newest) could not load its delta/iceberg extensions"; }
    say "duckdb extensions (.venv-newest): loaded $out"
}

# `setup.sh readers`: only what `make test-readers` needs (the Debian packages to build and the JDK,
# .venv-newest, Spark 4.1's jars).
mkdir -p "$ROOT/.cache"
case "${1:-all}" in
all)
    step_debian
    step_jars
    step_registry
    step_spark_jars
    step_catalog_jars
    step_spark4_jars
    step_venv
    step_venv_newest
    step_duckdb
    step_duckdb_newest ;;
stack)
    step_debian
    step_jars
    step_registry
    step_catalog_jars ;;
readers)
    step_debian
    step_spark4_jars
    step_venv_newest
    step_duckdb_newest ;;
*)  fail "usage: setup.sh [all|stack|readers]" ;;
esac
say "done"
