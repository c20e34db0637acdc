#!/usr/bin/env bash
# orchestrate_streaming_pipelines.sh - start, stop and watch the cdcflow
# pipelines (Kafka -> Delta Lake, Kafka -> Iceberg) in the background.
#
#   start   [delta|iceberg]        no argument: both
#   stop    [delta|iceberg|all]    no argument: all
#   restart [delta|iceberg|all]
#   status
#   logs    delta|iceberg          (-f to follow: LOGS_FOLLOW=1)
#
# Environment (defaults in brackets):
#   CDCFLOW_BIN               cdcflow binary [<repo>/build/cdcflow]
#   CDCFLOW_RUN_DIR           PID files [/tmp/cdcflow-run]
#   DELTA_LOG, ICEBERG_LOG    log files [/tmp/kafka-to-delta.log, /tmp/kafka-to-iceberg.log]
#   DELTA_METRICS_PORT        [9464]    ICEBERG_METRICS_PORT [9465]
#   DELTA_ARGS, ICEBERG_ARGS  extra arguments for `cdcflow delta` / `cdcflow iceberg`
#   DELTA_CONFIG, ICEBERG_CONFIG
#                             run `cdcflow run FILE` for that pipeline instead (multi-table,
#                             e.g. deploy/pipelines/all-tables.conf); its metrics port should
#                             be DELTA_METRICS_PORT / ICEBERG_METRICS_PORT for `status`
#   KAFKA_BOOTSTRAP_SERVERS   [localhost:9092]
#   KAFKA_CONNECT_URL         [http://127.0.0.1:8083]
#   STOP_TIMEOUT              seconds between SIGTERM and SIGKILL [30]
#   START_TIMEOUT             seconds to wait for /healthz after start [30]
#   SKIP_PREREQS=1            do not check Kafka / Connect / the connector
# The pipelines read their own variables (DELTA_TABLE_PATH, ICEBERG_WAREHOUSE,
# ...); see `cdcflow delta --help`.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
BIN=${CDCFLOW_BIN:-$repo/build/cdcflow}
RUN_DIR=${CDCFLOW_RUN_DIR:-/tmp/cdcflow-run}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
START_TIMEOUT=${START_TIMEOUT:-30}
BOOTSTRAP=${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}
CONNECT_URL=${KAFKA_CONNECT_URL:-http://127.0.0.1:8083}

die() { echo "error: $*" >&2; exit 1; }
info() { echo "$*"; }

log_file() {
    case $1 in
    delta) echo "${DELTA_LOG:-/tmp/kafka-to-delta.log}" ;;
    iceberg) echo "${ICEBERG_LOG:-/tmp/kafka-to-iceberg.log}" ;;
    esac
}
metrics_port() {
    case $1 in
    delta) echo "${DELTA_METRICS_PORT:-9464}" ;;
    iceberg) echo "${ICEBERG_METRICS_PORT:-9465}" ;;
    esac
}
extra_args() {
    case $1 in
    delta) echo "${DELTA_ARGS:-}" ;;
    iceberg) echo "${ICEBERG_ARGS:-}" ;;
    esac
}
config_file() {
    case $1 in
    delta) echo "${DELTA_CONFIG:-}" ;;
    iceberg) echo "${ICEBERG_CONFIG:-}" ;;
    esac
}
pid_file() { echo "$RUN_DIR/$1.pid"; }

# /proc/PID/cmdline with NULs as spaces.
cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# Kafka property names whose values are secrets (librdkafka's sensitive
# ones: sasl.password, ssl.key.password, ssl.keystore.password, ssl.key.pem,
# sasl.oauthbearer.client.secret, sasl.oauthbearer.config, ... and the like).
SECRET_KEY_RE='(password|passwd|secret|passphrase|token|credential|jaas|private\.key|key\.pem|oauthbearer\.config)'

# cmdline_of with the value of every secret KEY=VALUE argument (also in
# --flag=KEY=VALUE form) replaced by ***: what the PID file keeps and the
# liveness check compares, so that no secret is written to disk.
masked_cmdline_of() {
    local a pre key out=''
    [ -r "/proc/$1/cmdline" ] || return 1
    while IFS= read -r -d '' a; do
        pre=''
        if [[ $a =~ ^(--[A-Za-z0-9-]+=)(.*)$ ]]; then
            pre=${BASH_REMATCH[1]} a=${BASH_REMATCH[2]}
        fi
        if [[ $a =~ ^([A-Za-z0-9._-]+)= ]]; then
            key=${BASH_REMATCH[1]}
            [[ ${key,,} =~ $SECRET_KEY_RE ]] && a="$key=***"
        fi
        out+="$pre$a "
    done <"/proc/$1/cmdline" 2>/dev/null
    printf '%s' "$out"
}

# The PID recorded for a pipeline if that process is alive and is the one
# started (the PID file keeps its command line, secrets masked); a stale PID
# file (dead process, or a reused PID) is removed, not trusted.
live_pid() {
    local f pid want
    f=$(pid_file "$1")
    [ -f "$f" ] || return 1
    pid=$(sed -n 1p "$f" 2>/dev/null)
    want=$(sed -n 2p "$f" 2>/dev/null)
    if [[ "$pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] && [ -n "$want" ]; then
        if [ "$(masked_cmdline_of "$pid")" = "$want" ]; then
            echo "$pid"
            return 0
        fi
        if [ "$(cmdline_of "$pid")" = "$want" ]; then
            # Written by an older version of this script, secrets and all: scrub it.
            (umask 077 && printf '%s\n%s\n' "$pid" "$(masked_cmdline_of "$pid")" >"$f")
            echo "$pid"
            return 0
        fi
    fi
    echo "note: removing stale PID file $f (process ${pid:-?} is gone)" >&2
    rm -f "$f"
    return 1
}

check_prereqs() {
    [ "${SKIP_PREREQS:-0}" = 1 ] && return 0
    [ -x "$BIN" ] || die "$BIN not found or not executable; build it with 'make'"
    local hp host port
    hp=${BOOTSTRAP%%,*}
    host=${hp%:*} port=${hp##*:}
    if ! timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
        die "Kafka is not reachable at $hp; start the stack with 'scripts/stack.sh start' (or set KAFKA_BOOTSTRAP_SERVERS)"
    fi
    if ! curl -fsS -m 5 "$CONNECT_URL/" >/dev/null 2>&1; then
        die "Kafka Connect is not reachable at $CONNECT_URL; start the stack with 'scripts/stack.sh start' (or set KAFKA_CONNECT_URL)"
    fi
    if ! "$BIN" connector status --connect-url "$CONNECT_URL" >/dev/null 2>&1; then
        info "Debezium connector is not RUNNING; registering it"
        "$BIN" connector register --connect-url "$CONNECT_URL" ||
            die "could not register the Debezium connector; see the message above and 'cdcflow connector status'"
    fi
}

start_one() {
    local p=$1 pid log port cfg
    if pid=$(live_pid "$p"); then
        info "$p: already running (PID $pid)"
        return 0
    fi
    mkdir -p "$RUN_DIR" || die "cannot create $RUN_DIR"
    log=$(log_file "$p")
    port=$(metrics_port "$p")
    cfg=$(config_file "$p")
    if [ -n "$cfg" ]; then
        [ -r "$cfg" ] || die "$p: config file $cfg not readable"
        nohup "$BIN" run "$cfg" >>"$log" 2>&1 </dev/null &
    else
        # shellcheck disable=SC2046 # extra args are split on purpose
        nohup "$BIN" "$p" --metrics-port "$port" $(extra_args "$p") >>"$log" 2>&1 </dev/null &
    fi
    pid=$!
    # The command line identifies the process later (a PID alone may be reused).
    # Wait for nohup to have exec'ed cdcflow so the line recorded is cdcflow's.
    for _ in $(seq 1 100); do
        case $(cmdline_of "$pid") in "$BIN "*) break ;; esac
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    # Never the secrets of --kafka-prop: the file is on disk, often world-readable.
    (umask 077 && printf '%s\n%s\n' "$pid" "$(masked_cmdline_of "$pid")" >"$(pid_file "$p")")
    # Healthy means the metrics endpoint answers; bounded wait.
    local t=0
    while [ "$t" -lt $((START_TIMEOUT * 2)) ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$(pid_file "$p")"
            echo "error: $p exited during start; last lines of $log:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        if curl -fsS -m 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
            info "$p: started (PID $pid, log $log, metrics http://127.0.0.1:$port/metrics)"
            return 0
        fi
        sleep 0.5
        t=$((t + 1))
    done
    info "$p: started (PID $pid) but /healthz did not answer within ${START_TIMEOUT}s; see $log"
}

stop_one() {
    local p=$1 pid t=0
    if ! pid=$(live_pid "$p"); then
        info "$p: not running"
        return 0
    fi
    # SIGTERM: cdcflow finishes the batch in flight, commits, exits 0.
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ "$t" -lt $((STOP_TIMEOUT * 10)) ]; do
        sleep 0.1
        t=$((t + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "warning: $p (PID $pid) did not stop within ${STOP_TIMEOUT}s; sending SIGKILL (committed data is safe)" >&2
        kill -KILL "$pid" 2>/dev/null
        sleep 0.2
    fi
    rm -f "$(pid_file "$p")"
    info "$p: stopped"
}

# Sum of a metric's samples (all label sets) from Prometheus text.
metric_sum() {
    awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF; f = 1 } END { if (f) printf "%.0f", s; else print "-" }'
}

# One metric's value with `digits` decimals, e.g. seconds (- if absent).
metric_num() {
    awk -v m="$1" -v d="$2" '$1 == m { printf "%.*f", d, $NF; f = 1; exit } END { if (!f) print "-" }'
}

# Bytes as MiB with one decimal (- stays -).
mib() {
    [ "$1" = - ] && { echo -; return; }
    awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'
}

status_one() {
    local p=$1 pid port m1 m2 ev1 ev2 rate lag ver age dlq up start now last brows bbytes commit paused mem memmax
    port=$(metrics_port "$p")
    if ! pid=$(live_pid "$p"); then
        printf '%-8s stopped\n' "$p"
        return 1
    fi
    start=$(stat -c %Y "$(pid_file "$p")")
    now=$(date +%s)
    up=$((now - start))
    m1=$(curl -fsS -m 2 "http://127.0.0.1:$port/metrics" 2>/dev/null)
    if [ -z "$m1" ]; then
        printf '%-8s running  pid=%s uptime=%ss metrics=unreachable (port %s)\n' "$p" "$pid" "$up" "$port"
        return 0
    fi
    sleep 1
    m2=$(curl -fsS -m 2 "http://127.0.0.1:$port/metrics" 2>/dev/null)
    ev1=$(metric_sum cdcflow_events_total <<<"$m1")
    ev2=$(metric_sum cdcflow_events_total <<<"${m2:-$m1}")
    rate=-
    [ "$ev1" != - ] && [ "$ev2" != - ] && rate=$((ev2 - ev1))
    lag=$(metric_sum cdcflow_consumer_lag <<<"${m2:-$m1}")
    ver=$(metric_sum cdcflow_table_version <<<"${m2:-$m1}")
    dlq=$(metric_sum cdcflow_dead_letter_total <<<"${m2:-$m1}")
    last=$(metric_sum cdcflow_last_commit_timestamp_seconds <<<"${m2:-$m1}")
    age=-
    [ "$last" != - ] && [ "$last" != 0 ] && age="$((now - last))s"
    # Batches and backpressure: the last batch handed to the commit, how
    # long the last commit took, time paused waiting for commits, and what
    # the batches hold against --max-memory.
    m2=${m2:-$m1}
    brows=$(metric_sum cdcflow_batch_rows <<<"$m2")
    bbytes=$(mib "$(metric_sum cdcflow_batch_bytes <<<"$m2")")
    commit=$(metric_num cdcflow_last_commit_seconds 3 <<<"$m2")
    paused=$(metric_num cdcflow_paused_seconds_total 1 <<<"$m2")
    mem=$(mib "$(metric_sum cdcflow_memory_bytes <<<"$m2")")
    memmax=$(mib "$(metric_sum cdcflow_memory_limit_bytes <<<"$m2")")
    printf '%-8s running  pid=%s uptime=%ss events=%s events/s=%s lag=%s version=%s version_age=%s dead_lettered=%s batch_rows=%s batch_mib=%s commit_s=%s paused_s=%s memory_mib=%s/%s\n' \
        "$p" "$pid" "$up" "$ev2" "$rate" "$lag" "$ver" "$age" "$dlq" "$brows" "$bbytes" "$commit" "$paused" "$mem" "$memmax"
}

which_pipelines() {
    case ${1:-all} in
    delta | iceberg) echo "$1" ;;
    all) echo "delta iceberg" ;;
    *) die "unknown pipeline '$1' (delta, iceberg or all)" ;;
    esac
}

usage() {
    sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'
}

cmd=${1:-}
shift || true
case $cmd in
start)
    [ "${1:-all}" = all ] || which_pipelines "$1" >/dev/null
    check_prereqs
    rc=0
    for p in $(which_pipelines "${1:-all}"); do start_one "$p" || rc=1; done
    exit $rc
    ;;
stop)
    for p in $(which_pipelines "${1:-all}"); do stop_one "$p"; done
    ;;
restart)
    for p in $(which_pipelines "${1:-all}"); do stop_one "$p"; done
    check_prereqs
    rc=0
    for p in $(which_pipelines "${1:-all}"); do start_one "$p" || rc=1; done
    exit $rc
    ;;
status)
    rc=0
    for p in delta iceberg; do status_one "$p" || rc=3; done
    exit $rc
    ;;
logs)
    case ${1:-} in
    delta | iceberg) ;;
    *) die "usage: $0 logs delta|iceberg" ;;
    esac
    f=$(log_file "$1")
    [ -f "$f" ] || die "no log yet at $f"
    if [ "${LOGS_FOLLOW:-0}" = 1 ] || [ "${2:-}" = -f ]; then exec tail -n 50 -F "$f"; fi
    tail -n "${LOG_LINES:-100}" "$f"
    ;;
-h | --help | help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
