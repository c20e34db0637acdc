#!/usr/bin/env bash
# catalog.sh - start, stop or report the Iceberg REST catalog of the local stack, its tables in S3.
#
#   scripts/catalog.sh start|stop|status|restart
#
# The server is Apache Iceberg's own REST catalog server (iceberg-open-api's RESTCatalogServer, the
# reference server of the REST catalog spec), pinned by deploy/iceberg-rest/pom.xml and fetched into
# .cache/stack/iceberg-rest/libs by scripts/setup.sh.  Its catalog is a JDBC catalog in SQLite (the
# table -> metadata-location pointers, swapped atomically: that is what orders writers); metadata and
# data files go to S3 through S3FileIO, at the S3 server of the stack (moto).
#
# Bound to 127.0.0.1:$CATALOG_PORT (8181).  Pid file var/run/iceberg-rest.pid, log var/log/iceberg-rest.log.
# As in stack.sh: a port served by a healthy catalog started elsewhere is reused, and stop only ends
# the process whose pid file is in this checkout's var/.
#
# Settings (environment):
#   CATALOG_PORT     port of the catalog (8181)
#   S3_PORT          port of the stack's S3 server (9400); S3_ENDPOINT overrides the whole URL
#   S3_BUCKET        bucket of the warehouse (cdcflow); ICEBERG_WAREHOUSE overrides s3://$S3_BUCKET/warehouse
#   S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION   credentials of the S3 server (cdcflow, cdcflow-secret, us-east-1)
#   CATALOG_DB       JDBC URL of the catalog database: an SQLite database in memory by default, since
#                    the default S3 server keeps its objects in memory too (a catalog that outlived
#                    them would point at files that are gone); a file (jdbc:sqlite:/path) keeps it.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VAR=$ROOT/var
LOG=$VAR/log
RUN=$VAR/run
LIBS=$ROOT/.cache/stack/iceberg-rest/libs
LAUNCHER=$ROOT/deploy/iceberg-rest/LoopbackCatalogServer.java
NAME=iceberg-rest
PIDFILE=$RUN/$NAME.pid

CATALOG_PORT=${CATALOG_PORT:-8181}
CATALOG_URL=http://127.0.0.1:$CATALOG_PORT
S3_PORT=${S3_PORT:-9400}
S3_ENDPOINT=${S3_ENDPOINT:-http://127.0.0.1:$S3_PORT}
S3_BUCKET=${S3_BUCKET:-cdcflow}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-cdcflow}
S3_SECRET_KEY=${S3_SECRET_KEY:-cdcflow-secret}
S3_REGION=${S3_REGION:-us-east-1}
ICEBERG_WAREHOUSE=${ICEBERG_WAREHOUSE:-s3://$S3_BUCKET/warehouse}
# One database shared by the connections of the catalog's pool (a plain :memory: is one per connection).
CATALOG_DB=${CATALOG_DB:-jdbc:sqlite:file:cdcflow_catalog?mode=memory&cache=shared}
START_TIMEOUT=${STACK_START_TIMEOUT:-90}
STOP_TIMEOUT=${STACK_STOP_TIMEOUT:-30}

say()  { printf 'catalog: %s\n' "$*"; }
fail() { printf 'catalog: error: %s\n' "$*" >&2; exit 1; }

log_tail() {
    local f=$LOG/$NAME.log
    [ -s "$f" ] || return 0
    printf -- '--- last lines of %s ---\n' "$f" >&2
    tail -n "${1:-30}" "$f" | cut -c1-300 >&2
    printf -- '---\n' >&2
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

port_busy() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# pid from the pid file, if that process is alive and is ours (its command line names this checkout).
live_pid() {
    local pid
    [ -s "$PIDFILE" ] || return 1
    pid=$(head -n1 "$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$ROOT/" || return 1
    printf '%s\n' "$pid"
}

# The port the running catalog was started on: second line of the pid file.
running_port() { sed -n 2p "$PIDFILE" 2>/dev/null; }

# The spec's first call of every client; its answer has "defaults" and "overrides".
catalog_healthy() {
    curl -fsS -m 5 "$CATALOG_URL/v1/config" 2>/dev/null | grep -q '"overrides"'
}

# Any HTTP answer at all: the S3 server is up (its answer to an unsigned GET is not our business).
s3_reachable() {
    [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$S3_ENDPOINT/" 2>/dev/null)" != 000 ]
}

kill_pid() {
    local pid=$1 t0=$SECONDS
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if [ $((SECONDS - t0)) -ge "$STOP_TIMEOUT" ]; then
            say "still running after ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            sleep 0.5
            break
        fi
        sleep 0.3
    done
}

need_jars() {
    command -v java >/dev/null 2>&1 || fail "java not found: run scripts/setup.sh (installs openjdk-17-jdk-headless)"
    ls "$LIBS"/iceberg-open-api-*-test-fixtures.jar >/dev/null 2>&1 ||
        fail "the Iceberg REST catalog jars are missing in $LIBS: run scripts/setup.sh"
}

version() {
    ls "$LIBS"/iceberg-open-api-*-test-fixtures.jar 2>/dev/null |
        sed -E 's/.*iceberg-open-api-(.*)-test-fixtures\.jar/\1/' | head -n1
}

cmd_start() {
    local pid t0 t0s
    for tool in ss curl java; do
        command -v "$tool" >/dev/null 2>&1 || fail "'$tool' not found: run scripts/setup.sh"
    done
    mkdir -p "$LOG" "$RUN"
    if pid=$(live_pid); then
        [ "$(running_port)" = "$CATALOG_PORT" ] ||
            fail "this checkout's catalog already runs on port $(running_port) (pid $pid), not $CATALOG_PORT: stop it first"
        say "already running (pid $pid, $CATALOG_URL)"; return 0
    fi
    if port_busy "$CATALOG_PORT"; then
        if catalog_healthy; then
            say "port $CATALOG_PORT is served by a healthy Iceberg REST catalog started elsewhere; reusing it (stop it from where it was started)"
            return 0
        fi
        fail "port $CATALOG_PORT is taken by another program that is not an Iceberg REST catalog.
  See who holds it: ss -ltnp 'sport = :$CATALOG_PORT'   or pick another port: CATALOG_PORT=8182 $0 start"
    fi
    need_jars
    s3_reachable || say "warning: no S3 server answers at $S3_ENDPOINT yet; tables cannot be created until one does"
    say "starting on $CATALOG_URL (Apache Iceberg $(version), warehouse $ICEBERG_WAREHOUSE, S3 $S3_ENDPOINT)"
    t0=$(now)
    # The server takes its catalog properties from CATALOG_* (CATALOG_IO__IMPL -> io-impl) and logs
    # them all at start-up: the S3 keys go in the AWS SDK's own variables instead, which it never logs.
    # The marker property puts this checkout's path in the command line, which live_pid checks.
    env CATALOG_CATALOG__IMPL=org.apache.iceberg.jdbc.JdbcCatalog \
        CATALOG_URI="$CATALOG_DB" \
        CATALOG_JDBC_SCHEMA__VERSION=V1 \
        CATALOG_WAREHOUSE="$ICEBERG_WAREHOUSE" \
        CATALOG_IO__IMPL=org.apache.iceberg.aws.s3.S3FileIO \
        CATALOG_S3_ENDPOINT="$S3_ENDPOINT" \
        CATALOG_S3_PATH__STYLE__ACCESS=true \
        CATALOG_CLIENT_REGION="$S3_REGION" \
        AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_REGION="$S3_REGION" \
        setsid java -Xms64m -Xmx384m -XX:+UseSerialGC -Djava.awt.headless=true -Dcdcflow.stack="$ROOT/" \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=info -cp "$LIBS/*" "$LAUNCHER" 127.0.0.1 "$CATALOG_PORT" \
        </dev/null >>"$LOG/$NAME.log" 2>&1 &
    pid=$!
    printf '%s\n%s\n' "$pid" "$CATALOG_PORT" >"$PIDFILE"
    t0s=$SECONDS
    while ! catalog_healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail; rm -f "$PIDFILE"; fail "the catalog exited during start-up (log: $LOG/$NAME.log)"
        fi
        if [ $((SECONDS - t0s)) -ge "$START_TIMEOUT" ]; then
            log_tail; kill_pid "$pid"; rm -f "$PIDFILE"
            fail "the catalog was not ready after ${START_TIMEOUT}s (log: $LOG/$NAME.log); stopped it"
        fi
        sleep 0.3
    done
    say "up in $(since "$t0")s: $CATALOG_URL (pid $pid)"
}

cmd_stop() {
    local pid
    pid=$(live_pid) || { say "not running here"; rm -f "$PIDFILE"; return 0; }
    say "stopping (pid $pid)"
    kill_pid "$pid"
    rm -f "$PIDFILE"
}

cmd_status() {
    local pid where
    if catalog_healthy; then
        if pid=$(live_pid); then where="pid $pid"; else where="started elsewhere"; fi
        printf '%-9s up    127.0.0.1:%-5s Apache Iceberg REST catalog %s, warehouse %s, S3 %s (%s)\n' \
            catalog "$CATALOG_PORT" "$(version)" "$ICEBERG_WAREHOUSE" "$S3_ENDPOINT" "$where"
    else
        printf '%-9s down  127.0.0.1:%-5s\n' catalog "$CATALOG_PORT"; return 1
    fi
}

case ${1:-} in
start)   cmd_start ;;
stop)    cmd_stop ;;
status)  cmd_status ;;
restart) cmd_stop; cmd_start ;;
*)       echo "usage: scripts/catalog.sh start|stop|status|restart" >&2; exit 2 ;;
esac
