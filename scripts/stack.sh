#!/usr/bin/env bash
# stack.sh - start, stop or report the local CDC stack: PostgreSQL 15, Kafka (KRaft), Kafka Connect + Debezium
# (with Apicurio's Avro converter as a plugin), a schema registry (Apicurio Registry, in memory), an S3 server
# (moto, SigV4-checked, conditional writes enforced: scripts/s3_server.py) and an Iceberg REST catalog storing
# its tables there (scripts/catalog.sh).
#
#   scripts/stack.sh start|stop|status|restart|s3-env
#
# Everything lives under this checkout: data and pid files in var/, logs in var/log/, jars in
# .cache/stack/ (filled by scripts/setup.sh).  Ports (bound to 127.0.0.1) are 5432, 9092 + 9093, 8083, 8085,
# 9400 and 8181 unless the environment says otherwise, so a second stack can run beside the first (for
# example from a worktree, to try a change without touching the shared one):
#   STACK_PG_PORT STACK_KAFKA_PORT STACK_CONTROLLER_PORT STACK_CONNECT_PORT STACK_REGISTRY_PORT
#   STACK_S3_PORT STACK_CATALOG_PORT
# If a port is already served by a healthy cdcflow stack (another checkout's), start reuses it and
# stop leaves it alone: stop only ends processes whose pid files are in this var/.
# Every wait is bounded; on failure the tail of the component's log is printed.
#
# S3 for tests and demos, in memory (gone at stop), bucket "cdcflow" made at start:
#   AWS_ENDPOINT_URL_S3=http://127.0.0.1:9400 AWS_ACCESS_KEY_ID=cdcflow AWS_SECRET_ACCESS_KEY=cdcflow-secret
#   AWS_REGION=us-east-1   (tests: S3_ENDPOINT=http://127.0.0.1:9400, S3_BUCKET=cdcflow)
# It accepts only that key pair and checks every signature, like AWS.  `scripts/stack.sh s3-env` prints
# these as export lines.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VAR=$ROOT/var
LOG=$VAR/log
RUN=$VAR/run
CACHE=$ROOT/.cache/stack
KAFKA_LIBS=$CACHE/kafka/libs
PLUGINS=$CACHE/plugins
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DATA=$VAR/pg/data
PG_PORT=${STACK_PG_PORT:-5432} KAFKA_PORT=${STACK_KAFKA_PORT:-9092} CONTROLLER_PORT=${STACK_CONTROLLER_PORT:-9093}
CONNECT_PORT=${STACK_CONNECT_PORT:-8083} REGISTRY_PORT=${STACK_REGISTRY_PORT:-8085}
PG_USER=cdcuser PG_PASSWORD=cdcpass PG_DB=cdcdb
CONNECT_URL=http://127.0.0.1:$CONNECT_PORT
S3_PORT=${STACK_S3_PORT:-9400} S3_BUCKET=cdcflow S3_REGION=us-east-1 S3_ACCESS_KEY=cdcflow S3_SECRET_KEY=cdcflow-secret
S3_URL=http://127.0.0.1:$S3_PORT
REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
REGISTRY_HOME=$CACHE/apicurio-registry
# catalog.sh reads these: the catalog's own port, and the S3 server it stores tables in.
export CATALOG_PORT=${STACK_CATALOG_PORT:-${CATALOG_PORT:-8181}} S3_PORT
PY=$ROOT/.venv/bin/python
# Seconds each component may take to come up or go down before we give up.
START_TIMEOUT=${STACK_START_TIMEOUT:-90}
STOP_TIMEOUT=${STACK_STOP_TIMEOUT:-30}

say()  { printf 'stack: %s\n' "$*"; }
fail() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# Print the last lines of a component's log so a failure explains itself.
log_tail() {
    local f=$LOG/$1.log
    [ -s "$f" ] || return 0
    printf -- '--- last lines of %s ---\n' "$f" >&2
    tail -n "${2:-30}" "$f" | cut -c1-300 >&2
    printf -- '---\n' >&2
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

port_busy() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# pid from a pid file, if that process is alive and is ours (its command line names this checkout).
live_pid() {
    local f=$1 pid
    [ -s "$f" ] || return 1
    pid=$(head -n1 "$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$ROOT/" || return 1
    printf '%s\n' "$pid"
}

# Run a command as the PostgreSQL owner: PostgreSQL refuses to run as root.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_psql_cdc() {  # psql as cdcuser over TCP (what Debezium and the tests use)
    PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 psql -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" "$@"
}

pg_healthy()      { [ "$(pg_psql_cdc -Atc 'SHOW wal_level' 2>/dev/null)" = logical ]; }
kafka_healthy()   { port_busy "$KAFKA_PORT" && timeout 10 kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 5 >/dev/null 2>&1; }
connect_healthy() {
    curl -fsS -m 5 "$CONNECT_URL/connectors" >/dev/null 2>&1 &&
        curl -fsS -m 5 "$CONNECT_URL/connector-plugins" 2>/dev/null | grep -q PostgresConnector
}
# Up: the native API names Apicurio Registry and the Confluent-compatible API answers (a list of subjects).
registry_healthy() {
    curl -fsS -m 5 "$REGISTRY_URL/apis/registry/v3/system/info" 2>/dev/null | grep -q '"Apicurio Registry' &&
        curl -fsS -m 5 "$REGISTRY_URL/apis/ccompat/v7/subjects" 2>/dev/null | grep -q '^\['
}

# A signed request to the stack's S3 (the payload hash is that of an empty body: curl 7.88 does not send it).
s3_curl() {
    curl -sS -m 5 --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:${S3_TRY_SECRET:-$S3_SECRET_KEY}" \
        -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' "$@"
}
s3_status() { s3_curl -o /dev/null -w '%{http_code}' "$@" 2>/dev/null; }
# Up: a signed ListBuckets succeeds and a wrong secret is refused (a plain moto, which takes any
# signature, is not ours).  Healthy: and the bucket is there.
s3_up() {
    [ "$(s3_status "$S3_URL/")" = 200 ] && [ "$(S3_TRY_SECRET=not-the-secret s3_status "$S3_URL/")" = 403 ]
}
s3_healthy() { s3_up && [ "$(s3_status -I "$S3_URL/$S3_BUCKET")" = 200 ]; }

# wait_for NAME CHECK-FUNCTION PID : poll until healthy, the process dies, or the timeout passes.
wait_for() {
    local name=$1 check=$2 pid=${3:-} t0=$SECONDS
    while ! "$check"; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            log_tail "$name"; fail "$name exited during start-up (log: $LOG/$name.log)"
        fi
        if [ $((SECONDS - t0)) -ge "$START_TIMEOUT" ]; then
            log_tail "$name"
            # Leave no half-started process behind: the next start begins from a clean state.
            [ -n "$pid" ] && { kill_pid "$name" "$pid"; rm -f "$RUN/$name.pid"; }
            fail "$name not ready after ${START_TIMEOUT}s (log: $LOG/$name.log); stopped it"
        fi
        sleep 0.5
    done
}

# A port is free, ours, or served by a healthy cdcflow component we can reuse.  Returns 0 when the
# caller should start the component, 1 when there is nothing to do.
claim_port() {
    local name=$1 port=$2 check=$3 pidfile=$4 pid
    if pid=$(live_pid "$pidfile"); then
        say "$name already running (pid $pid, port $port)"; return 1
    fi
    port_busy "$port" || return 0
    if "$check"; then
        say "$name: port $port is served by a healthy cdcflow stack started elsewhere; reusing it (stop it from where it was started)"
        return 1
    fi
    fail "$name: port $port is taken by another program that is not a working cdcflow $name.
  See who holds it: ss -ltnp 'sport = :$port'   and stop it (for the Debian cluster: pg_ctlcluster 15 main stop)."
}

# Before starting anything: either every port is ours/free, or every component is served by a healthy
# stack started elsewhere.  A mix (say that stack's Connect talking to our fresh PostgreSQL) would
# make a connector with a replication slot in the wrong database.
check_ports() {
    local foreign=() free=() spec name port check pidfile
    for spec in "postgres $PG_PORT pg_healthy $PG_DATA/postmaster.pid" \
                "kafka $KAFKA_PORT kafka_healthy $RUN/kafka.pid" \
                "connect $CONNECT_PORT connect_healthy $RUN/connect.pid"; do
        read -r name port check pidfile <<<"$spec"
        if live_pid "$pidfile" >/dev/null; then continue; fi
        if ! port_busy "$port"; then free+=("$name"); continue; fi
        "$check" || fail "$name: port $port is taken by another program that is not a working cdcflow $name.
  See who holds it: ss -ltnp 'sport = :$port'   and stop it$([ "$name" = postgres ] &&
            echo " (Debian's own cluster: pg_ctlcluster 15 main stop)")."
        foreign+=("$name")
    done
    if [[ " ${free[*]} " == *" kafka "* ]] && port_busy "$CONTROLLER_PORT"; then
        fail "kafka: controller port $CONTROLLER_PORT is taken by another program (ss -ltnp 'sport = :$CONTROLLER_PORT')"
    fi
    if [ ${#foreign[@]} -gt 0 ] && [ ${#free[@]} -gt 0 ]; then
        fail "part of a cdcflow stack started elsewhere is running (${foreign[*]} up, ${free[*]} down).
  Stop it where it was started (scripts/stack.sh stop in that checkout), or start it fully there."
    fi
}

need_java() {
    command -v java >/dev/null 2>&1 || fail "java not found: run scripts/setup.sh (installs openjdk-17-jdk-headless)"
    local v
    v=$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n1)
    [ "${v:-0}" -ge 17 ] || fail "Java 17 or newer needed, found '${v:-none}': run scripts/setup.sh"
    ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 ||
        fail "Kafka jars missing in $KAFKA_LIBS: run scripts/setup.sh"
    ls "$PLUGINS"/debezium-connector-postgres/debezium-connector-postgres-*.jar >/dev/null 2>&1 ||
        fail "Debezium connector jars missing in $PLUGINS: run scripts/setup.sh"
    ls "$PLUGINS"/*/apicurio-registry-utils-converter-*.jar >/dev/null 2>&1 ||
        fail "Apicurio converter jars missing in $PLUGINS: run scripts/setup.sh"
}

# The runner jar of the Apicurio distribution: quarkus-run.jar (fast-jar) or *-runner.jar (uber/legacy).
registry_jar() {
    local j
    for j in "$REGISTRY_HOME"/quarkus-run.jar "$REGISTRY_HOME"/*-runner.jar; do
        [ -f "$j" ] && { printf '%s\n' "$j"; return 0; }
    done
    return 1
}

# ---------------------------------------------------------------- PostgreSQL

pg_conf() { sed -e "s|@VAR@|$VAR|g" -e "s|@PG_PORT@|$PG_PORT|g" "$ROOT/deploy/postgres/postgresql.conf"; }

pg_init() {
    [ -s "$PG_DATA/PG_VERSION" ] && return 0
    [ -x "$PG_BIN/initdb" ] || fail "PostgreSQL 15 not found in $PG_BIN: run scripts/setup.sh"
    say "postgres: initdb $PG_DATA"
    mkdir -p "$PG_DATA" "$VAR/pg/run"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || fail "no 'postgres' system user: run scripts/setup.sh (package postgresql-15)"
        chown -R postgres:postgres "$VAR/pg"
        as_pg test -x "$VAR/pg" ||
            fail "user postgres cannot enter $VAR/pg: make the directories above it world-searchable (chmod o+x)"
    fi
    chmod 700 "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$LOG/postgres-initdb.log" 2>&1 || {
        log_tail postgres-initdb; rm -rf "$PG_DATA"; fail "initdb failed"
    }
    pg_conf >"$PG_DATA/cdcflow.conf"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PG_DATA/cdcflow.conf"
    echo "include 'cdcflow.conf'" >>"$PG_DATA/postgresql.conf"
}

pg_start() {
    claim_port postgres "$PG_PORT" pg_healthy "$PG_DATA/postmaster.pid" || { pg_schema; return; }
    pg_init
    # Keep the settings in step with deploy/ when that file changed since initdb.
    pg_conf >"$PG_DATA/cdcflow.conf"
    mkdir -p "$VAR/pg/run"
    touch "$LOG/postgres.log"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$LOG/postgres.log" "$VAR/pg/run" "$PG_DATA/cdcflow.conf"
    say "postgres: starting on 127.0.0.1:$PG_PORT"
    local t0; t0=$(now)
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOG/postgres.log" -w -t "$START_TIMEOUT" start >/dev/null || {
        log_tail postgres; fail "postgres did not start (log: $LOG/postgres.log)"
    }
    as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$VAR/pg/run" -p "$PG_PORT" -U postgres -d postgres \
        -f "$ROOT/deploy/postgres/bootstrap.sql" >/dev/null || fail "creating role $PG_USER / database $PG_DB failed"
    pg_schema
    say "postgres: up in $(since "$t0")s"
}

pg_schema() {
    pg_psql_cdc -f "$ROOT/deploy/postgres/schema.sql" >/dev/null 2>"$LOG/postgres-schema.log" || {
        log_tail postgres-schema; fail "applying deploy/postgres/schema.sql as $PG_USER failed"
    }
}

pg_stop() {
    local pid
    pid=$(live_pid "$PG_DATA/postmaster.pid") || { say "postgres: not running here"; return 0; }
    say "postgres: stopping (pid $pid)"
    # fast = roll back open transactions and shut down cleanly; immediate only if that hangs.
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1 ||
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 stop >/dev/null 2>&1 ||
        kill_pid postgres "$pid"
}

# ---------------------------------------------------------------- JVM components

# kill_pid NAME PID : SIGTERM, bounded wait, then SIGKILL.
kill_pid() {
    local name=$1 pid=$2 t0=$SECONDS
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if [ $((SECONDS - t0)) -ge "$STOP_TIMEOUT" ]; then
            say "$name: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            sleep 0.5
            break
        fi
        sleep 0.3
    done
}

# run_java NAME HEAP MAIN ARGS... : start a JVM in its own session, pid in var/run/NAME.pid.
run_java() {
    local name=$1 heap=$2 main=$3; shift 3
    # The marker property puts this checkout's path in the command line, which live_pid checks.
    setsid java -Xms128m -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dcdcflow.stack="$ROOT/" -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" "$main" "$@" </dev/null >>"$LOG/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

kafka_start() {
    local pid
    claim_port kafka "$KAFKA_PORT" kafka_healthy "$RUN/kafka.pid" || return 0
    port_busy "$CONTROLLER_PORT" &&
        fail "kafka: controller port $CONTROLLER_PORT is taken by another program (ss -ltnp 'sport = :$CONTROLLER_PORT')"
    need_java
    mkdir -p "$VAR/kafka"
    sed -e "s|@VAR@|$VAR|g" -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
        "$ROOT/deploy/kafka/server.properties" >"$VAR/kafka/server.properties"
    if [ ! -s "$VAR/kafka/data/meta.properties" ]; then
        # KRaft storage is formatted once with a cluster id of its own.
        local id
        id=$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$LOG/kafka.log") ||
            { log_tail kafka; fail "kafka: could not make a cluster id"; }
        say "kafka: formatting KRaft storage (cluster id $id)"
        java -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" -cp "$KAFKA_LIBS/*" \
            kafka.tools.StorageTool format -t "$id" -c "$VAR/kafka/server.properties" >>"$LOG/kafka.log" 2>&1 ||
            { log_tail kafka; fail "kafka: formatting storage failed"; }
    fi
    say "kafka: starting on 127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$CONTROLLER_PORT)"
    local t0; t0=$(now)
    run_java kafka 512m kafka.Kafka "$VAR/kafka/server.properties"
    pid=$(cat "$RUN/kafka.pid")
    wait_for kafka kafka_healthy "$pid"
    say "kafka: up in $(since "$t0")s"
}

connect_start() {
    local pid
    claim_port connect "$CONNECT_PORT" connect_healthy "$RUN/connect.pid" || return 0
    need_java
    mkdir -p "$VAR/connect"
    sed -e "s|@PLUGINS@|$PLUGINS|g" -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONNECT_PORT@|$CONNECT_PORT|g" \
        "$ROOT/deploy/kafka/connect-distributed.properties" >"$VAR/connect/connect.properties"
    say "connect: starting on 127.0.0.1:$CONNECT_PORT (plugins: $PLUGINS)"
    local t0; t0=$(now)
    run_java connect 512m org.apache.kafka.connect.cli.ConnectDistributed "$VAR/connect/connect.properties"
    pid=$(cat "$RUN/connect.pid")
    wait_for connect connect_healthy "$pid"
    say "connect: up in $(since "$t0")s"
}

# ---------------------------------------------------------------- schema registry (Apicurio)

# Apicurio Registry 3 (Quarkus), in-memory storage: the schemas live as long as the process, like
# the S3 server's objects (the Avro connector registers them again as it publishes).  Native API
# $REGISTRY_URL/apis/registry/v3 (and v2), Confluent-compatible $REGISTRY_URL/apis/ccompat/v7.
registry_start() {
    local pid jar
    claim_port registry "$REGISTRY_PORT" registry_healthy "$RUN/registry.pid" || return 0
    need_java
    jar=$(registry_jar) || fail "registry: Apicurio Registry missing in $REGISTRY_HOME: run scripts/setup.sh"
    say "registry: starting Apicurio Registry on $REGISTRY_URL"
    local t0; t0=$(now)
    # The marker property puts this checkout's path in the command line, which live_pid checks.
    # Quarkus' own settings: loopback only, no management port; no auth (a development registry).
    # (A subshell for the working directory, where Quarkus may write; java alone goes to the background,
    # so nothing holds our stdout.)
    (cd "$VAR" || exit 1
     setsid java -Xms64m -Xmx384m -XX:+UseG1GC -Djava.awt.headless=true -Dcdcflow.stack="$ROOT/" \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
        -Dquarkus.management.enabled=false \
        -Dapicurio.rest.deletion.artifact.enabled=true -Dapicurio.rest.deletion.artifact-version.enabled=true \
        -jar "$jar" </dev/null >>"$LOG/registry.log" 2>&1 &
     echo $! >"$RUN/registry.pid")
    pid=$(cat "$RUN/registry.pid")
    wait_for registry registry_healthy "$pid"
    say "registry: up in $(since "$t0")s"
}

# ---------------------------------------------------------------- S3 (moto)

s3_start() {
    local pid code
    claim_port s3 "$S3_PORT" s3_healthy "$RUN/s3.pid" || return 0
    [ -x "$PY" ] && "$PY" -c 'import moto.moto_server.werkzeug_app' 2>/dev/null ||
        fail "s3: moto[server] is not installed in .venv: run scripts/setup.sh (tests/requirements.txt)"
    say "s3: starting moto on $S3_URL (bucket $S3_BUCKET, region $S3_REGION)"
    local t0; t0=$(now)
    # The script's path names this checkout, which live_pid checks.
    setsid "$PY" "$ROOT/scripts/s3_server.py" --host 127.0.0.1 --port "$S3_PORT" --region "$S3_REGION" \
        --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" </dev/null >>"$LOG/s3.log" 2>&1 &
    echo $! >"$RUN/s3.pid"
    pid=$(cat "$RUN/s3.pid")
    wait_for s3 s3_up "$pid"
    code=$(s3_status -X PUT "$S3_URL/$S3_BUCKET")
    [ "$code" = 200 ] || [ "$code" = 409 ] || { log_tail s3; fail "s3: creating bucket $S3_BUCKET answered HTTP $code"; }
    s3_healthy || { log_tail s3; fail "s3: bucket $S3_BUCKET not there after creating it"; }
    say "s3: up in $(since "$t0")s"
}

# pid_stop NAME : stop the process of var/run/NAME.pid if it is ours.
pid_stop() {
    local name=$1 pid
    pid=$(live_pid "$RUN/$name.pid") || { say "$name: not running here"; rm -f "$RUN/$name.pid"; return 0; }
    say "$name: stopping (pid $pid)"
    kill_pid "$name" "$pid"
    rm -f "$RUN/$name.pid"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    local t0
    t0=$(now)
    for tool in ss curl kcat psql; do
        command -v "$tool" >/dev/null 2>&1 || fail "'$tool' not found: run scripts/setup.sh"
    done
    mkdir -p "$LOG" "$RUN"
    check_ports
    # Missing jars or JDK should stop us before PostgreSQL is started, not after.
    if ! { kafka_healthy && connect_healthy; }; then need_java; fi
    pg_start
    kafka_start
    connect_start
    registry_start
    s3_start
    "$ROOT/scripts/catalog.sh" start || fail "the Iceberg REST catalog did not start (var/log/iceberg-rest.log)"
    say "ready in $(since "$t0")s: postgres 127.0.0.1:$PG_PORT ($PG_USER/$PG_PASSWORD db $PG_DB), kafka 127.0.0.1:$KAFKA_PORT, connect $CONNECT_URL, schema registry $REGISTRY_URL (ccompat: $REGISTRY_URL/apis/ccompat/v7), s3 $S3_URL (bucket $S3_BUCKET; scripts/stack.sh s3-env), iceberg rest catalog http://127.0.0.1:$CATALOG_PORT"
}

cmd_s3_env() {
    printf 'export AWS_ENDPOINT_URL_S3=%s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=%s\n' \
        "$S3_URL" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_REGION"
    printf 'export S3_ENDPOINT=%s S3_BUCKET=%s\n' "$S3_URL" "$S3_BUCKET"
}

cmd_stop() {
    "$ROOT/scripts/catalog.sh" stop
    pid_stop s3
    pid_stop registry
    pid_stop connect
    pid_stop kafka
    pg_stop
}

cmd_status() {
    local v rc=0 pid where
    origin() { if pid=$(live_pid "$1"); then where="pid $pid"; else where="started elsewhere"; fi; }
    if pg_healthy; then
        origin "$PG_DATA/postmaster.pid"
        v=$(pg_psql_cdc -Atc 'SHOW server_version' 2>/dev/null)
        printf '%-9s up    127.0.0.1:%-5s PostgreSQL %s, wal_level=logical (%s)\n' postgres "$PG_PORT" "$v" "$where"
    else
        printf '%-9s down  127.0.0.1:%-5s\n' postgres "$PG_PORT"; rc=1
    fi
    if kafka_healthy; then
        origin "$RUN/kafka.pid"
        v=$(ls "$KAFKA_LIBS"/kafka-clients-*.jar 2>/dev/null | sed -E 's/.*kafka-clients-(.*)\.jar/\1/' | head -n1)
        [ "$where" = "started elsewhere" ] && v=""
        printf '%-9s up    127.0.0.1:%-5s Kafka %sKRaft (%s)\n' kafka "$KAFKA_PORT" "${v:+$v }" "$where"
    else
        printf '%-9s down  127.0.0.1:%-5s\n' kafka "$KAFKA_PORT"; rc=1
    fi
    if connect_healthy; then
        origin "$RUN/connect.pid"
        v=$(curl -fsS -m 5 "$CONNECT_URL/" | sed -nE 's/.*"version":"([^"]*)".*/\1/p')
        local dbz
        dbz=$(curl -fsS -m 5 "$CONNECT_URL/connector-plugins" |
            grep -oE '"class":"io.debezium.connector.postgresql.PostgresConnector","type":"source","version":"[^"]*"' |
            sed -E 's/.*"version":"([^"]*)"/\1/')
        printf '%-9s up    127.0.0.1:%-5s Kafka Connect %s, Debezium PostgreSQL %s (%s)\n' connect "$CONNECT_PORT" "${v:-?}" "${dbz:-?}" "$where"
        curl -fsS -m 5 "$CONNECT_URL/connectors?expand=status" 2>/dev/null |
            grep -oE '"name":"[^"]*","connector":\{"state":"[A-Z]*"' |
            sed -E 's/"name":"([^"]*)","connector":\{"state":"([A-Z]*)"/          connector \1: \2/'
    else
        printf '%-9s down  127.0.0.1:%-5s\n' connect "$CONNECT_PORT"; rc=1
    fi
    if registry_healthy; then
        origin "$RUN/registry.pid"
        v=$(curl -fsS -m 5 "$REGISTRY_URL/apis/registry/v3/system/info" | sed -nE 's/.*"version":"([^"]*)".*/\1/p')
        local nsub
        nsub=$(curl -fsS -m 5 "$REGISTRY_URL/apis/ccompat/v7/subjects" | grep -o '"[^"]*"' | wc -l)
        printf '%-9s up    127.0.0.1:%-5s Apicurio Registry %s, %s subjects (ccompat v7) (%s)\n' registry "$REGISTRY_PORT" "${v:-?}" "$nsub" "$where"
    else
        printf '%-9s down  127.0.0.1:%-5s\n' registry "$REGISTRY_PORT"; rc=1
    fi
    if s3_healthy; then
        origin "$RUN/s3.pid"
        v=$("$PY" -c 'import moto; print(moto.__version__)' 2>/dev/null)
        [ "$where" = "started elsewhere" ] && v=""
        printf '%-9s up    127.0.0.1:%-5s moto %sS3, bucket %s, SigV4 checked (%s)\n' s3 "$S3_PORT" "${v:+$v }" "$S3_BUCKET" "$where"
    else
        printf '%-9s down  127.0.0.1:%-5s\n' s3 "$S3_PORT"; rc=1
    fi
    "$ROOT/scripts/catalog.sh" status || rc=1
    return $rc
}

case ${1:-} in
start)   cmd_start ;;
stop)    cmd_stop ;;
status)  cmd_status ;;
restart) cmd_stop; cmd_start ;;
s3-env)  cmd_s3_env ;;
*)       echo "usage: scripts/stack.sh start|stop|status|restart|s3-env" >&2; exit 2 ;;
esac
