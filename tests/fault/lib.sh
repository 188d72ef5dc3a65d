# shellcheck shell=bash
# lib.sh — the harness the fault scenarios share (sourced, never run).
#
# A scenario calls, in this order:
#   fault_init NAME REDIS_DB    ports, work dir, watchdog, traps; starts the stores
#   fault_start_ticketd         its own ticketd on a free loopback port, fresh database
#   fault_create_event          the flash-sale event (types VIP and GA)
#   fault_load_start SECONDS    the load generator in the background (bash + curl)
#   ... the fault ...
#   fault_load_wait             waits for the load generator to finish
#   fault_audit                 the common audit (audit.sh)
#   fault_finish                prints "1 passed, 0 failed" or "0 passed, 1 failed", exits
#
# Stores: scripts/services.sh, profile "test", with the ports of TICKETD_REDIS_PORT /
# TICKETD_PG_PORT, else TICKETD_TEST_REDIS_PORT / TICKETD_TEST_PG_PORT (what
# scripts/test.sh exports for CTest), else 6391 / 5441; the data dir of TICKETD_DATA_DIR,
# else <repo>/.data/test. A store that was running before the scenario is left running
# (restarted if the scenario took it down); one the scenario started is stopped.
# Isolation from other users of the same stores: a fresh PostgreSQL database, dropped
# at the end, and a Redis database number of the scenario's own, flushed at start and end.
#
# A Redis Cluster scenario sets FAULT_CLUSTER=1 before fault_init: the stores are then the
# cluster-test profile (cluster.sh), and fault_start_ticketd_more adds ticketd processes
# the load generator's workers are spread over.
#
# Tunables (environment): FAULT_TIMEOUT (whole scenario, s, default 140),
# FAULT_WORKERS (load processes, 6), FAULT_HOLD_SECONDS (4),
# FAULT_PAYMENT_LATENCY_MS (50), FAULT_KEEP=1 keeps the work dir and the data.

export LC_ALL=C # sort, join and comm must agree on one order
FAULT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
FAULT_REPO=$(cd "$FAULT_DIR/../.." && pwd -P)
# shellcheck source=tests/fault/audit.sh
source "$FAULT_DIR/audit.sh"
# shellcheck source=tests/fault/cluster.sh
source "$FAULT_DIR/cluster.sh"

FAULT_TOKEN=tk-test-only-fault-admin-token-0123456789abcdef
FAULT_CURL_MAX=${FAULT_CURL_MAX:-5} # no request may take longer than this (s)
FAULT_FAILURES=()
FAULT_NOTES=()
FAULT_LOAD_PIDS=()
FAULT_SAMPLER_PID=
TICKETD_PID=
FAULT_WATCHDOG_PID=
FAULT_DB=
FAULT_CLEANED=0
FAULT_FINISHED=0
FAULT_ERR=
FAULT_REDIS_WAS_UP=1 # until known: never stop a store we did not start
FAULT_CLUSTER=${FAULT_CLUSTER:-0}
FAULT_BASES=()     # every ticketd's base URL; workers take turns (empty: $BASE)
FAULT_MORE_PIDS=() # ticketd processes beyond the first (fault_start_ticketd_more)
FAULT_PG_WAS_UP=1

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

# seconds since the scenario started, to a tenth
elapsed() {
    local d=$((($(now_ms) - FAULT_T0) / 100))
    echo "$((d / 10)).$((d % 10))"
}

log() { printf '[%s %6ss] %s\n' "$FAULT_NAME" "$(elapsed)" "$*"; }

# fail MESSAGE: records a failed check (the scenario goes on, to report everything)
fail() {
    FAULT_FAILURES+=("$*")
    log "FAIL: $*"
}

note() {
    FAULT_NOTES+=("$*")
    log "note: $*"
}

# check DESCRIPTION CMD...: runs CMD; a non-zero status is a failed check
check() {
    local what=$1
    shift
    if "$@"; then
        log "ok: $what"
    else
        fail "$what"
    fi
}

# wait_for SECONDS CMD...: retries CMD every 100 ms; 0 as soon as it succeeds
wait_for() {
    local limit=$(($(now_ms) + $1 * 1000))
    shift
    while (($(now_ms) < limit)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

rcli() {
    if ((FAULT_CLUSTER)); then
        cluster_cli "$@" # cluster.sh: any live node, following redirects
    else
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -n "$REDIS_DB" --raw "$@"
    fi
}
# records_json KEY [R...]: the reservation records of tk:{s}:res as rid, JSON lines (HGETALL's shape)
records_json() {
    local key=$1
    shift
    rcli eval "$(cat "$FAULT_REPO/tests/support/records_json.lua")" 1 "$key" "$@"
}
psql_q() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$FAULT_DB" -c "$1"; }
psql_admin() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "$1"; }
services() { "$FAULT_REPO/scripts/services.sh" "$1" test; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; }

# fault_init NAME REDIS_DB
fault_init() {
    FAULT_NAME=$1
    REDIS_DB=$2
    FAULT_T0=$(now_ms)
    REDIS_PORT=${TICKETD_REDIS_PORT:-${TICKETD_TEST_REDIS_PORT:-6391}}
    PG_PORT=${TICKETD_PG_PORT:-${TICKETD_TEST_PG_PORT:-5441}}
    # services.sh reads these: pin it to the ports chosen here, whatever the profile says
    export TICKETD_REDIS_PORT=$REDIS_PORT TICKETD_PG_PORT=$PG_PORT
    FAULT_DATA_DIR=${TICKETD_DATA_DIR:-$FAULT_REPO/.data/test}
    [[ "$FAULT_DATA_DIR" == /* ]] || FAULT_DATA_DIR=$PWD/$FAULT_DATA_DIR
    TICKETD_BIN=${TICKETD_BIN:-$FAULT_REPO/build/ticketd}
    FAULT_WORK=$(mktemp -d "/tmp/tk_fault_${FAULT_NAME}.XXXXXX")
    mkdir -p "$FAULT_WORK/load" "$FAULT_WORK/audit"
    trap fault_cleanup EXIT
    trap 'FAULT_ERR="line $LINENO: $BASH_COMMAND"' ERR
    trap 'fail "interrupted or out of time (FAULT_TIMEOUT=${FAULT_TIMEOUT:-140}s)"; exit 1' INT TERM
    # the whole scenario is bounded: the watchdog TERMs us (cleanup still runs)
    local self=$$ limit=${FAULT_TIMEOUT:-140}
    (
        for ((i = 0; i < limit * 5; i++)); do
            sleep 0.2
            kill -0 "$self" 2>/dev/null || exit 0
        done
        kill -TERM "$self" 2>/dev/null
    ) &
    FAULT_WATCHDOG_PID=$!
    log "redis 127.0.0.1:$REDIS_PORT db $REDIS_DB, postgres 127.0.0.1:$PG_PORT, data $FAULT_DATA_DIR, work $FAULT_WORK"
    [[ -x "$TICKETD_BIN" ]] || {
        fail "no ticketd binary at $TICKETD_BIN (set TICKETD_BIN)"
        fault_finish
    }

    if ((FAULT_CLUSTER)); then
        fault_cluster_stores # cluster.sh
        return 0
    fi
    FAULT_REDIS_WAS_UP=0 FAULT_PG_WAS_UP=0
    redis_up && FAULT_REDIS_WAS_UP=1
    pg_up && FAULT_PG_WAS_UP=1
    services start-redis >/dev/null
    services start-postgres >/dev/null
    # the Redis on the port must be the one of our data dir, or killing it would hit someone else's
    local dir
    dir=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config get dir | sed -n 2p)
    if [[ "$(realpath -m "$dir")" != "$(realpath -m "$FAULT_DATA_DIR/redis")" ]]; then
        fail "the Redis on port $REDIS_PORT runs from '$dir', not $FAULT_DATA_DIR/redis: not ours; choose another TICKETD_REDIS_PORT"
        FAULT_REDIS_WAS_UP=1 # never stop it
        fault_finish
    fi
    rcli flushdb >/dev/null
    FAULT_DB=tk_fault_${FAULT_NAME}_$$
    psql_admin "DROP DATABASE IF EXISTS $FAULT_DB WITH (FORCE)" >/dev/null
    psql_admin "CREATE DATABASE $FAULT_DB" >/dev/null
}

# free_port: a port the kernel says is free now (a random pick can land on an
# ephemeral port some outgoing connection holds, and then bind fails)
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# fault_start_ticketd: starts ticketd (a new process on the same port when one ran
# before) and waits until /healthz answers 200.
fault_start_ticketd() {
    [[ -n "${FAULT_HTTP_PORT:-}" ]] || FAULT_HTTP_PORT=$(free_port)
    BASE=http://127.0.0.1:$FAULT_HTTP_PORT
    local envs
    _ticketd_env "$FAULT_HTTP_PORT"
    echo "----- ticketd start at $(now_ms) -----" >>"$FAULT_WORK/ticketd.log"
    env -i "${envs[@]}" "$TICKETD_BIN" >>"$FAULT_WORK/ticketd.log" 2>&1 &
    TICKETD_PID=$!
    local t0
    t0=$(now_ms)
    if ! wait_for 15 healthy_or_dead || ! ticketd_alive; then
        fail "ticketd did not answer /healthz with 200 within 15 s$(ticketd_alive || echo ': it exited')"
        tail -n 20 "$FAULT_WORK/ticketd.log" >&2
        return 1
    fi
    log "ticketd pid $TICKETD_PID healthy on $BASE after $(($(now_ms) - t0)) ms"
}

# fault_start_ticketd_more: one more ticketd process on a port of its own (log
# ticketd-N.log), for scenarios that run several behind the load generator
fault_start_ticketd_more() {
    local port envs pid n=$((${#FAULT_MORE_PIDS[@]} + 2))
    port=$(free_port)
    [[ ${#FAULT_BASES[@]} != 0 ]] || FAULT_BASES=("$BASE")
    _ticketd_env "$port"
    env -i "${envs[@]}" "$TICKETD_BIN" >>"$FAULT_WORK/ticketd-$n.log" 2>&1 &
    pid=$!
    FAULT_MORE_PIDS+=("$pid")
    if ! wait_for 15 healthy_at "http://127.0.0.1:$port"; then
        fail "ticketd #$n did not answer /healthz with 200 within 15 s"
        tail -n 20 "$FAULT_WORK/ticketd-$n.log" >&2
        return 1
    fi
    FAULT_BASES+=("http://127.0.0.1:$port")
    log "ticketd #$n pid $pid healthy on http://127.0.0.1:$port"
}

# _ticketd_env PORT: sets envs, ticketd's whole environment
_ticketd_env() {
    envs=(PATH="$PATH" TICKETD_ENV=development TICKETD_LISTEN="127.0.0.1:$1"
        TICKETD_PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/$FAULT_DB"
        TICKETD_ADMIN_TOKEN="$FAULT_TOKEN" TICKETD_HOLD_SECONDS="${FAULT_HOLD_SECONDS:-4}"
        TICKETD_PAYMENT_LATENCY_MS="${FAULT_PAYMENT_LATENCY_MS:-50}" TICKETD_THREADS=2 TICKETD_LOG_LEVEL=info
        TICKETD_CLIENT_MAX_HOLDS=0 TICKETD_CLIENT_HOLD_RATE=0) # every buyer here is 127.0.0.1: fair use is not under test
    if ((FAULT_CLUSTER)); then
        envs+=(TICKETD_REDIS_CLUSTER="$CLUSTER_SEEDS")
    else
        envs+=(TICKETD_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/$REDIS_DB")
    fi
    local v
    for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS TSAN_OPTIONS; do
        [[ -z "${!v:-}" ]] || envs+=("$v=${!v}")
    done
}

healthy() { healthy_at "$BASE"; }

healthy_at() {
    [[ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "$1/healthz")" == 200 ]]
}

healthy_or_dead() { healthy || ! ticketd_alive; }

ticketd_alive() { [[ -n "$TICKETD_PID" ]] && kill -0 "$TICKETD_PID" 2>/dev/null; }

fault_kill_ticketd() {
    kill -9 "$TICKETD_PID"
    wait "$TICKETD_PID" 2>/dev/null || true
    echo "----- ticketd pid $TICKETD_PID killed -9 at $(now_ms) -----" >>"$FAULT_WORK/ticketd.log"
    log "ticketd pid $TICKETD_PID killed with SIGKILL"
    TICKETD_PID=
}

# fault_create_event [VIP_CAP GA_CAP]: the sale's event; sets EVENT, SHARD, TYPES
fault_create_event() {
    local vip=${1:-150} ga=${2:-600} body code
    body=$(curl -s -m 5 -w '\n%{http_code}' -X POST "$BASE/admin/events" -H "Authorization: Bearer $FAULT_TOKEN" \
        -H 'Content-Type: application/json' \
        -d "{\"name\": \"Fault $FAULT_NAME\", \"date\": \"2031-06-01T20:00:00Z\", \"ticket_types\": [
             {\"type\": \"VIP\", \"price\": 120.5, \"amount\": $vip}, {\"type\": \"GA\", \"price\": 45, \"amount\": $ga}]}")
    code=${body##*$'\n'}
    [[ "$code" == 201 ]] || {
        fail "creating the event answered $code: ${body%$'\n'*}"
        fault_finish
    }
    EVENT=$(jq -r .event.id <<<"${body%$'\n'*}")
    SHARD=${EVENT:0:4}
    TYPES=(VIP GA)
    log "event $EVENT (shard $SHARD): VIP $vip, GA $ga"
}

# ---------------------------------------------------------------------------------
# The load generator: FAULT_WORKERS bash processes, each a loop of shoppers: hold
# (1-3 tickets of VIP and/or GA, with an Idempotency-Key, retried with the same key on
# no answer or 503), then abandon (10%), cancel (5%), or pay (a declined card first for
# 10%, then a good one) and poll the transaction until it is final. Every request is a
# line in load/<worker>.log:
#   RES  t_ms code latency_s rid|- vip ga attempt retry_after(0|1) error|-
#   PAY  t_ms code latency_s rid txn|- card attempt retry_after(0|1) error|-
#   POLL t_ms code latency_s rid txn status|-
#   TXN  t_ms rid txn final_status        (COMPLETED | ERROR | PENDING | UNKNOWN)
#   CAN  t_ms code latency_s rid
# Latency is what curl measured; code 000 is no answer within FAULT_CURL_MAX seconds.
# ---------------------------------------------------------------------------------

# _req METHOD PATH [BODY] [IDEMPOTENCY_KEY]: sets RC, LAT, RBODY, RRETRY (1 when Retry-After)
_req() {
    local args=(-s -m "$FAULT_CURL_MAX" -X "$1" -D - -w '\n%{http_code} %{time_total}')
    [[ -z "${3:-}" ]] || args+=(-H 'Content-Type: application/json' --data-binary "$3")
    [[ -z "${4:-}" ]] || args+=(-H "Idempotency-Key: $4")
    local out
    out=$(curl "${args[@]}" "${FAULT_REQ_BASE:-$BASE}$2" 2>/dev/null) || true
    local last=${out##*$'\n'}
    RC=${last%% *}
    LAT=${last##* }
    RBODY=${out%$'\n'*}
    RRETRY=0
    [[ "${RBODY,,}" != *$'\nretry-after:'* ]] || RRETRY=1
    RERR=-
    [[ ! "$RBODY" =~ \"error\":\"([^\"]*)\" ]] || RERR=${BASH_REMATCH[1]// /_}
}

_poll_txn() {
    local rid=$1 txn=$2 until_ms=$(($(now_ms) + 3000)) st=UNKNOWN s
    while (($(now_ms) < until_ms)); do
        _req GET "/transactions/list/?transaction_id=$txn"
        s=-
        [[ "$RC" != 200 || ! "$RBODY" =~ \"status\":\"([A-Z]+)\" ]] || s=${BASH_REMATCH[1]}
        printf 'POLL\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(now_ms)" "$RC" "$LAT" "$rid" "$txn" "$s"
        [[ "$s" == - ]] || st=$s
        [[ "$st" == PENDING || "$st" == UNKNOWN ]] || break
        sleep 0.05
    done
    printf 'TXN\t%s\t%s\t%s\t%s\n' "$(now_ms)" "$rid" "$txn" "$st"
}

# _pay RID CARD KEY: sets TXN (or empty)
_pay() {
    local attempt
    TXN=
    for attempt in 1 2 3 4; do
        _req PUT /events/reservation/ "{\"reservation_id\": \"$1\", \"card\": \"$2\"}" "$3"
        [[ "$RC" != 202 || ! "$RBODY" =~ \"transaction_id\":\"([0-9a-f-]{36})\" ]] || TXN=${BASH_REMATCH[1]}
        printf 'PAY\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(now_ms)" "$RC" "$LAT" "$1" "${TXN:--}" "$2" "$attempt" "$RRETRY" "$RERR"
        [[ "$RC" == 000 || "$RC" == 503 ]] || break
        sleep 0.3
    done
}

_worker() {
    local w=$1 end_ms=$2 n=0 vip ga lines key rid attempt r
    while [[ ! -e "$FAULT_WORK/load/stop" ]] && (($(now_ms) < end_ms)); do
        n=$((n + 1))
        key="$FAULT_NAME-$$-$w-$n"
        r=$((RANDOM % 100)) vip=0 ga=0
        if ((r < 20)); then
            vip=$((RANDOM % 2 + 1)) ga=$((RANDOM % 2 + 1))
        elif ((r < 45)); then
            vip=$((RANDOM % 3 + 1))
        else
            ga=$((RANDOM % 3 + 1))
        fi
        lines=
        ((vip == 0)) || lines="{\"type\": \"VIP\", \"amount\": $vip}"
        ((ga == 0)) || lines="${lines:+$lines, }{\"type\": \"GA\", \"amount\": $ga}"
        rid=
        for attempt in 1 2 3 4; do
            _req POST /events/reservation/ "{\"event_id\": \"$EVENT\", \"tickets\": [$lines]}" "$key"
            [[ "$RC" != 201 || ! "$RBODY" =~ \"reservation_id\":\"([0-9a-f-]{36})\" ]] || rid=${BASH_REMATCH[1]}
            printf 'RES\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(now_ms)" "$RC" "$LAT" "${rid:--}" "$vip" "$ga" "$attempt" "$RRETRY" "$RERR"
            [[ "$RC" == 000 || "$RC" == 503 ]] || break
            sleep 0.3
        done
        if [[ -z "$rid" ]]; then
            [[ "$RC" != 409 ]] || sleep 0.2 # sold out (or the key is busy): do not spin
            continue
        fi
        r=$((RANDOM % 100))
        if ((r < 10)); then
            continue # abandoned: the hold expires
        elif ((r < 15)); then
            _req DELETE /events/reservation/ "{\"reservation_id\": \"$rid\"}"
            printf 'CAN\t%s\t%s\t%s\t%s\n' "$(now_ms)" "$RC" "$LAT" "$rid"
            continue
        elif ((r < 25)); then
            _pay "$rid" 4000000000000002 "$key-p1"
            [[ -z "$TXN" ]] || _poll_txn "$rid" "$TXN"
        fi
        _pay "$rid" 4242424242424242 "$key-p2"
        [[ -z "$TXN" ]] || _poll_txn "$rid" "$TXN"
    done
}

# fault_load_start SECONDS: starts the workers; they stop after SECONDS or at fault_load_stop
fault_load_start() {
    local end_ms=$(($(now_ms) + $1 * 1000)) w
    rm -f "$FAULT_WORK/load/stop"
    for ((w = 1; w <= ${FAULT_WORKERS:-6}; w++)); do
        (
            trap - EXIT INT TERM
            [[ ${#FAULT_BASES[@]} == 0 ]] || FAULT_REQ_BASE=${FAULT_BASES[w % ${#FAULT_BASES[@]}]}
            _worker "$w" "$end_ms" >>"$FAULT_WORK/load/$w.log" 2>>"$FAULT_WORK/load/$w.err"
        ) &
        FAULT_LOAD_PIDS+=($!)
    done
    _sampler &
    FAULT_SAMPLER_PID=$!
    log "load generator: ${FAULT_WORKERS:-6} workers for up to $1 s"
}

# fault_load_wait: waits for the workers (they end on their own; bounded by their requests)
fault_load_wait() {
    local pid
    for pid in "${FAULT_LOAD_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    FAULT_LOAD_PIDS=()
    if [[ -n "$FAULT_SAMPLER_PID" ]]; then
        kill "$FAULT_SAMPLER_PID" 2>/dev/null || true
        wait "$FAULT_SAMPLER_PID" 2>/dev/null || true
        FAULT_SAMPLER_PID=
    fi
    log "load generator done: $(load_summary)"
}

fault_load_stop() {
    touch "$FAULT_WORK/load/stop"
    fault_load_wait
}

# all load lines of one kind, from every worker
load_lines() { cat "$FAULT_WORK"/load/*.log 2>/dev/null | awk -F'\t' -v k="$1" '$1 == k' || true; }

load_summary() {
    cat "$FAULT_WORK"/load/*.log 2>/dev/null | awk -F'\t' '
        { n++; by[$1 " " ($1 == "TXN" ? $5 : $3)]++ }
        END { printf "%d requests/outcomes;", n; for (k in by) printf " %s=%d", k, by[k]; printf "\n" }' | tr -s ' '
}

# Samples the invariant straight from Redis every 200 ms while the sale runs.
_sampler() {
    trap - EXIT INT TERM
    local t vals
    while :; do
        for t in "${TYPES[@]}"; do
            vals=$(rcli hmget "tk:{$SHARD}:inv" "$EVENT:$t:cap" "$EVENT:$t:avail" "$EVENT:$t:held" "$EVENT:$t:sold" 2>/dev/null |
                tr '\n' ' ') || continue
            # shellcheck disable=SC2086
            set -- $vals
            (($# == 4)) || continue
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(now_ms)" "$t" "$1" "$2" "$3" "$4" >>"$FAULT_WORK/samples"
        done
        sleep 0.2
    done
}

fault_cleanup() {
    local rc=$?
    ((FAULT_CLEANED == 0)) || return 0
    FAULT_CLEANED=1
    set +e
    [[ -z "${FAULT_WORK:-}" ]] || touch "$FAULT_WORK/load/stop" 2>/dev/null
    local pid
    for pid in "${FAULT_LOAD_PIDS[@]}" $FAULT_SAMPLER_PID; do
        pkill -TERM -P "$pid" 2>/dev/null
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ -n "$TICKETD_PID" ]] && kill -0 "$TICKETD_PID" 2>/dev/null; then
        kill -TERM "$TICKETD_PID"
        for _ in $(seq 1 50); do
            kill -0 "$TICKETD_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$TICKETD_PID" 2>/dev/null
        wait "$TICKETD_PID" 2>/dev/null
    fi
    for pid in "${FAULT_MORE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if ((FAULT_CLUSTER)); then
        fault_cluster_cleanup # cluster.sh
    elif [[ -n "${REDIS_PORT:-}" ]]; then
        redis_up || services start-redis >/dev/null 2>&1
        [[ "${FAULT_KEEP:-0}" == 1 ]] || rcli flushdb >/dev/null 2>&1
        # a scenario that wrote ballast leaves the AOF compacted, not 50 MB larger
        [[ "${FAULT_COMPACT_AOF:-0}" != 1 ]] || rcli bgrewriteaof >/dev/null 2>&1
        ((FAULT_REDIS_WAS_UP == 1)) || services stop-redis >/dev/null 2>&1
    fi
    if ((!FAULT_CLUSTER)) && [[ -n "${PG_PORT:-}" ]]; then
        pg_up || services start-postgres >/dev/null 2>&1
        [[ -z "$FAULT_DB" || "${FAULT_KEEP:-0}" == 1 ]] || psql_admin "DROP DATABASE IF EXISTS $FAULT_DB WITH (FORCE)" >/dev/null 2>&1
        ((FAULT_PG_WAS_UP == 1)) || services stop-postgres >/dev/null 2>&1
    fi
    [[ -z "$FAULT_WATCHDOG_PID" ]] || kill "$FAULT_WATCHDOG_PID" 2>/dev/null
    if [[ -n "${FAULT_WORK:-}" ]]; then
        if ((${#FAULT_FAILURES[@]} == 0)) && [[ "${FAULT_KEEP:-0}" != 1 ]]; then
            rm -rf "$FAULT_WORK"
        else
            echo "$FAULT_NAME: logs kept in $FAULT_WORK (ticketd.log, load/, audit/)" >&2
        fi
    fi
    if ((FAULT_FINISHED == 0)); then
        # the scenario stopped before its verdict: a command failed under set -e, or a signal
        echo "${FAULT_NAME:-fault}: FAIL (aborted${FAULT_ERR:+ at $FAULT_ERR}, status $rc)"
        ((${#FAULT_FAILURES[@]} == 0)) || printf '  - %s\n' "${FAULT_FAILURES[@]}"
        echo "0 passed, 1 failed"
        exit 1
    fi
    return "$rc"
}

# fault_finish: the verdict, as the last line, and the exit status
fault_finish() {
    local n
    FAULT_FINISHED=1
    # stop ticketd now, so that a sanitizer's report at exit is in the log too
    if ticketd_alive; then
        kill -TERM "$TICKETD_PID"
        wait_for 10 eval '! ticketd_alive' || kill -KILL "$TICKETD_PID" 2>/dev/null || true
        wait "$TICKETD_PID" 2>/dev/null || true
        TICKETD_PID=
    fi
    local pid
    for pid in "${FAULT_MORE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    FAULT_MORE_PIDS=()
    if [[ -n "${FAULT_WORK:-}" ]] && grep -qhE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$FAULT_WORK"/ticketd*.log 2>/dev/null; then
        fail "ticketd reported a sanitizer error: $(grep -hm 1 -E 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$FAULT_WORK"/ticketd*.log)"
    fi
    if ((${#FAULT_NOTES[@]} != 0)); then
        echo "notes:"
        printf '  - %s\n' "${FAULT_NOTES[@]}"
    fi
    log "finished in $(elapsed) s"
    n=${#FAULT_FAILURES[@]}
    if ((n == 0)); then
        echo "$FAULT_NAME: PASS"
        fault_cleanup
        echo "1 passed, 0 failed"
        exit 0
    fi
    echo "$FAULT_NAME: FAIL ($n failed checks)"
    printf '  - %s\n' "${FAULT_FAILURES[@]}"
    if [[ -n "${FAULT_WORK:-}" && -f "$FAULT_WORK/ticketd.log" ]]; then
        echo "ticketd's warnings and errors (count, first time, message):"
        grep -E ' (warn|error) |ticketd:' "$FAULT_WORK/ticketd.log" |
            awk '{ t = $1; $1 = ""; if (!($0 in n)) { first[$0] = t; order[++k] = $0 } n[$0]++ }
                 END { for (i = 1; i <= k; i++) printf "  | %4d  %s %s\n", n[order[i]], first[order[i]], order[i] }' |
            tail -n 20 || true
    fi
    fault_cleanup
    echo "0 passed, 1 failed"
    exit 1
}
