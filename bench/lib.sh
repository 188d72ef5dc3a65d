# shellcheck shell=bash
# lib.sh — shared by bench/run and bench/smoke (sourced, not run).
#
# Starts and stops the harness's own Redis + PostgreSQL (scripts/services.sh with
# the harness's ports and data dir) and its own ticketd, creates events through
# POST /admin/events, runs one scenario per function and leaves one JSON document
# per scenario in $WORK/<name>.json. Correctness checks go through check(), which
# counts passes and failures; speed is never a failure.
#
# The caller sets, before sourcing:
#   BENCH_REDIS_PORT BENCH_PG_PORT BENCH_HTTP_PORT BENCH_DATA_DIR   its ports and data
#   WORK                                                          a scratch directory
# and may set TICKETD_BIN (a binary to use instead of building build-release).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$BENCH_DIR/.." && pwd -P)
export BENCH_WRK_DIR=$BENCH_DIR/wrk

ADMIN_TOKEN=tk-test-only-bench-not-a-secret-0123456789abcdef
BASE_URL=http://127.0.0.1:$BENCH_HTTP_PORT
EVENT_DATE=2031-06-01T19:00:00Z
PAYMENT_LATENCY_MS=${BENCH_PAYMENT_LATENCY_MS:-20}

CHECKS_PASSED=0
CHECKS_FAILED=0
BENCH_PIDS=()   # background processes this harness started (load generators)
PG_PAUSED=()    # PostgreSQL processes a control stopped, resumed by cleanup if it dies
TICKETD_PID=""
SERVICES_STARTED=0

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# check NAME CONDITION-COMMAND...: one correctness assertion, printed ok / FAIL (the
# command's own output is dropped).
check() {
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then
        CHECKS_PASSED=$((CHECKS_PASSED + 1))
        echo "ok    $name"
    else
        CHECKS_FAILED=$((CHECKS_FAILED + 1))
        echo "FAIL  $name"
    fi
}

# eq A B: numeric equality that also accepts empty / null as "not equal".
eq() { [[ "$1" =~ ^-?[0-9]+$ && "$2" =~ ^-?[0-9]+$ ]] && (($1 == $2)); }

need_tools() {
    local absent=() t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || absent+=("$t")
    done
    ((${#absent[@]} == 0)) || die "missing tools: ${absent[*]} (run scripts/install-deps.sh)"
}

# ---------------------------------------------------------------- build, stores

# build_release: the optimised binary in build-release/ (only the ticketd target).
build_release() {
    if [[ -n "${TICKETD_BIN:-}" ]]; then
        [[ -x "$TICKETD_BIN" ]] || die "TICKETD_BIN=$TICKETD_BIN is not an executable"
        log "using TICKETD_BIN=$TICKETD_BIN"
        return
    fi
    log "building build-release/ticketd (Release)"
    cmake -S "$REPO" -B "$REPO/build-release" -DCMAKE_BUILD_TYPE=Release >"$WORK/cmake.log" 2>&1 ||
        { tail -n 30 "$WORK/cmake.log" >&2; die "cmake configure failed"; }
    cmake --build "$REPO/build-release" -j2 --target ticketd >>"$WORK/cmake.log" 2>&1 ||
        { tail -n 30 "$WORK/cmake.log" >&2; die "build failed (see above)"; }
    TICKETD_BIN=$REPO/build-release/ticketd
}

services() {
    TICKETD_DATA_DIR=$BENCH_DATA_DIR TICKETD_REDIS_PORT=$BENCH_REDIS_PORT TICKETD_PG_PORT=$BENCH_PG_PORT \
        "$REPO/scripts/services.sh" "$1" test
}

rcli() { redis-cli -h 127.0.0.1 -p "$BENCH_REDIS_PORT" "$@"; }
# records_json KEY [R...]: the reservation records of tk:{s}:res as rid, JSON lines
records_json() {
    local key=$1
    shift
    rcli --raw eval "$(cat "$REPO/tests/support/records_json.lua")" 1 "$key" "$@"
}
psql_q() { psql -X -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$BENCH_PG_PORT" -U postgres -d "${PGDB:-ticketd}" "$@"; }

# assert_ours: whatever answers on the harness's Redis and PostgreSQL ports must be the
# harness's own instance (its data dir), never someone else's that happens to use the
# port: the harness empties both. (scripts/services.sh says "already running" for any
# server on its port.) PostgreSQL lives under the data dir, or under
# /tmp/ticketd-test-<hash> when the postgres user cannot reach it (services.sh).
assert_ours() {
    local dir hash
    if rcli ping >/dev/null 2>&1; then
        dir=$(rcli --raw config get dir | sed -n 2p)
        [[ "$dir" == "$BENCH_DATA_DIR/redis" ]] ||
            die "port $BENCH_REDIS_PORT is taken by another Redis (dir $dir); stop it or change BENCH ports"
    fi
    if pg_isready -q -h 127.0.0.1 -p "$BENCH_PG_PORT" 2>/dev/null; then
        hash=$(printf '%s' "$BENCH_DATA_DIR" | sha256sum | cut -c1-8)
        dir=$(PGDB=postgres psql_q -c 'show data_directory' 2>/dev/null || true)
        [[ "$dir" == "$BENCH_DATA_DIR/pg" || "$dir" == "/tmp/ticketd-test-$hash/pg" ]] ||
            die "port $BENCH_PG_PORT is taken by another PostgreSQL (${dir:-unknown data dir}); stop it or change BENCH ports"
    fi
}

# start_stores: the harness's own Redis and PostgreSQL, emptied. Redis starts from an
# empty AOF; PostgreSQL records commit timestamps (the persistence lag needs them).
start_stores() {
    assert_ours
    if ! rcli ping >/dev/null 2>&1; then
        rm -rf "$BENCH_DATA_DIR/redis" # last run's AOF: nothing in it is worth keeping
    fi
    SERVICES_STARTED=1
    services start >"$WORK/services.log" 2>&1 || { cat "$WORK/services.log" >&2; die "services did not start"; }
    assert_ours
    if [[ "$(PGDB=postgres psql_q -c 'show track_commit_timestamp')" != on ]]; then
        log "enabling track_commit_timestamp in the bench PostgreSQL (one restart, once)"
        PGDB=postgres psql_q -c 'alter system set track_commit_timestamp = on' >/dev/null
        services stop >>"$WORK/services.log" 2>&1
        services start >>"$WORK/services.log" 2>&1 || { cat "$WORK/services.log" >&2; die "services did not restart"; }
        [[ "$(PGDB=postgres psql_q -c 'show track_commit_timestamp')" == on ]] || die "track_commit_timestamp is still off"
    fi
    rcli flushall >/dev/null
    rcli function flush >/dev/null
    # No automatic AOF rewrite (a fork + full write) in the middle of a measurement.
    rcli config set auto-aof-rewrite-percentage 0 >/dev/null
    PGDB=postgres psql_q -c 'drop database if exists ticketd with (force)' -c 'create database ticketd' >/dev/null
    eval "$(services env)" # TICKETD_REDIS_URL, TICKETD_PG_URL
}

stop_stores() {
    ((SERVICES_STARTED)) || return 0
    rcli flushall >/dev/null 2>&1 || true
    services stop >>"$WORK/services.log" 2>&1 || log "warning: services did not stop cleanly"
    rm -rf "$BENCH_DATA_DIR/redis"
    SERVICES_STARTED=0
}

# ---------------------------------------------------------------- ticketd

start_ticketd() {
    if curl -s -o /dev/null --max-time 1 "$BASE_URL/healthz"; then
        die "something already listens on 127.0.0.1:$BENCH_HTTP_PORT"
    fi
    env TICKETD_ENV=development TICKETD_LISTEN="127.0.0.1:$BENCH_HTTP_PORT" \
        TICKETD_REDIS_URL="$TICKETD_REDIS_URL" TICKETD_REDIS_CLUSTER="${TICKETD_REDIS_CLUSTER:-}" TICKETD_PG_URL="$TICKETD_PG_URL" \
        TICKETD_ADMIN_TOKEN="$ADMIN_TOKEN" TICKETD_HOLD_SECONDS=900 TICKETD_LOG_LEVEL=warn \
        TICKETD_PAYMENT_LATENCY_MS="$PAYMENT_LATENCY_MS" \
        TICKETD_CLIENT_MAX_HOLDS=0 TICKETD_CLIENT_HOLD_RATE=0 \
        "$TICKETD_BIN" >"$WORK/ticketd.log" 2>&1 &
    TICKETD_PID=$!
    local i
    for ((i = 0; i < 150; i++)); do
        if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$BASE_URL/healthz")" == 200 ]]; then
            log "ticketd (pid $TICKETD_PID) serving on $BASE_URL"
            return
        fi
        kill -0 "$TICKETD_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$WORK/ticketd.log" >&2
    die "ticketd did not become healthy"
}

stop_ticketd() {
    [[ -n "$TICKETD_PID" ]] || return 0
    if kill -0 "$TICKETD_PID" 2>/dev/null; then
        kill -TERM "$TICKETD_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$TICKETD_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$TICKETD_PID" 2>/dev/null || true
    fi
    wait "$TICKETD_PID" 2>/dev/null || true
    TICKETD_PID=""
}

# cleanup: every process this harness started, then the stores. For EXIT traps.
cleanup() {
    local pid
    ((${#PG_PAUSED[@]} == 0)) || kill -CONT "${PG_PAUSED[@]}" 2>/dev/null || true
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    stop_ticketd
    stop_stores
}

# create_event NAME TYPE:PRICE:AMOUNT...: prints the new event's id.
create_event() {
    local name=$1 spec types="" body status
    shift
    for spec in "$@"; do
        IFS=: read -r t p a <<<"$spec"
        types+="${types:+,}{\"type\":\"$t\",\"price\":$p,\"amount\":$a}"
    done
    body="{\"name\":\"$name\",\"date\":\"$EVENT_DATE\",\"ticket_types\":[$types]}"
    status=$(curl -s -o "$WORK/event.json" -w '%{http_code}' -X POST "$BASE_URL/admin/events" \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$body")
    [[ "$status" == 201 ]] || die "POST /admin/events answered $status: $(cat "$WORK/event.json")"
    jq -r '.event.id' "$WORK/event.json"
}

# ---------------------------------------------------------------- numbers

# pctl_json FILE: percentiles (nearest rank) of the microsecond values in FILE, as
# {"p50":..,"p99":..,"p999":..,"max":..,"mean":..} in milliseconds; {} when empty.
pctl_json() {
    sort -n "$1" | awk '
        { v[NR] = $1; sum += $1 }
        function at(p,  k) { k = int(p / 100 * NR); if (k < p / 100 * NR) k++; if (k < 1) k = 1; return v[k] / 1000 }
        END {
            if (NR == 0) { print "{}"; exit }
            printf "{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f,\"n\":%d}\n",
                at(50), at(90), at(99), at(99.9), v[NR] / 1000, sum / NR / 1000, NR
        }'
}

# ratio A B: A / B with three decimals, or null.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "null" && a != "") printf "%.3f", a / b; else printf "null" }'; }

# ---------------------------------------------------------------- wrk scenarios

# run_wrk NAME SCRIPT THREADS CONNECTIONS DURATION [ENV=VALUE...]: runs wrk and writes
# $WORK/NAME.json: the script's BENCH_JSON plus rps and tool.
run_wrk() {
    local name=$1 script=$2 threads=$3 conns=$4 duration=$5
    shift 5
    env "$@" wrk -t"$threads" -c"$conns" -d"$duration" --timeout 10s -s "$BENCH_WRK_DIR/$script" "$BASE_URL/" \
        >"$WORK/$name.wrk.txt" 2>&1 || { cat "$WORK/$name.wrk.txt" >&2; die "wrk $name failed"; }
    local line
    line=$(sed -n 's/^BENCH_JSON //p' "$WORK/$name.wrk.txt")
    [[ -n "$line" ]] || { cat "$WORK/$name.wrk.txt" >&2; die "wrk $name printed no BENCH_JSON"; }
    jq -c --arg tool "wrk -t$threads -c$conns -d$duration ($script)" \
        '. + {tool: $tool, rps: (.requests / .duration_s | floor)}' <<<"$line" >"$WORK/$name.json"
}

# Statuses a write may also get under overload: 503 + Retry-After is in the contract
# (ticketd refuses writes when its Redis pipeline or the unpersisted outbox is past its
# limit). bench/run allows it and reports how many (BENCH_ALLOW_503=1); bench/smoke,
# at its tiny scale, does not.
WRITE_EXTRA=()
[[ "${BENCH_ALLOW_503:-0}" == 1 ]] && WRITE_EXTRA=(503)

# status_only NAME CODES...: true when every response of scenario NAME (wrk) had one of
# CODES and no socket error happened.
status_only() {
    local name=$1
    shift
    local codes
    codes=$(printf '"%s",' "$@")
    jq -e "([.status | keys[] | select(IN(${codes%,}) | not)] | length == 0)
           and (.socket_errors | add == 0) and .requests > 0" "$WORK/$name.json" >/dev/null
}

# answered_with NAME CODES...: the same for an h2load pair: every request answered, with
# one of CODES.
answered_with() {
    local name=$1
    shift
    local codes
    codes=$(printf '"%s",' "$@")
    jq -e ".failed == 0 and .requests > 0 and ([.status | keys[] | select(IN(${codes%,}) | not)] | length == 0)" \
        "$WORK/$name.json" >/dev/null
}

scenario_healthz() { # NAME DURATION CONNECTIONS
    log "healthz: wrk GET /healthz, $3 connections, $2"
    run_wrk "$1" healthz.lua 2 "$3" "$2"
    check "$1: every answer 200" status_only "$1" 200
}

scenario_browse() { # EVENT DURATION CONNECTIONS [list|detail]
    local name=browse${4:+_$4}
    log "$name: wrk ${4:-GET + POST} /events/event/, $3 connections, $2"
    run_wrk "$name" browse.lua 2 "$3" "$2" BENCH_EVENT="$1" BENCH_BROWSE="${4:-mix}"
    check "$name: every answer 200" status_only "$name" 200
}

scenario_soldout() { # EVENT DURATION CONNECTIONS
    log "sold out: wrk POST /events/reservation/ on a sold-out event, $3 connections, $2"
    run_wrk soldout soldout.lua 2 "$3" "$2" BENCH_EVENT="$1" BENCH_TYPE=GA
    check "sold out: every answer 409" status_only soldout 409 "${WRITE_EXTRA[@]}"
    jq -c '. + {rejections_per_s: ((.status["409"] // 0) / .duration_s | floor)}' "$WORK/soldout.json" >"$WORK/soldout.tmp" &&
        mv "$WORK/soldout.tmp" "$WORK/soldout.json"
}

# ---------------------------------------------------------------- reservations (h2load)

# h2load_pair NAME EVENT CONNECTIONS H2LOAD-ARGS...: two h2load processes at once, each
# with half the connections, one POSTing 1-ticket and one 2-ticket reservations (h2load
# sends one body per process). Each logs every request: start_us, status, duration_us.
h2load_pair() {
    local name=$1 event=$2 conns=$3 amount pids=() rc=0
    shift 3
    for amount in 1 2; do
        printf '{"event_id":"%s","tickets":[{"type":"GA","amount":%d}]}' "$event" "$amount" >"$WORK/$name.body$amount.json"
        h2load --h1 -t1 -c$((conns / 2)) "$@" -d "$WORK/$name.body$amount.json" -H 'Content-Type: application/json' \
            --log-file="$WORK/$name.$amount.log" "$BASE_URL/events/reservation/" >"$WORK/$name.$amount.txt" 2>&1 &
        pids+=($!)
        BENCH_PIDS+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || rc=$?
    done
    ((rc == 0)) || { cat "$WORK/$name.1.txt" "$WORK/$name.2.txt" >&2; die "h2load $name failed"; }
}

# h2load_summary NAME: $WORK/NAME.json from the pair's logs: counts per status, 201s per
# amount, tickets in 201s, the window from the first request to the last 201 (the
# sell-out instant when the event sold out), and latency percentiles of the 201s and of
# every request. Requests without an answer are counted from h2load's summary.
h2load_summary() {
    local name=$1 unanswered=0 f
    # "requests: T total, S started, D done, OK succeeded, F failed, E errored, X timeout":
    # 4xx count as "failed" there, so an unanswered request is T - D + E + X.
    for f in "$WORK/$name.1.txt" "$WORK/$name.2.txt"; do
        unanswered=$((unanswered + $(awk '/^requests:/ { print $2 - $6 + $12 + $14 }' "$f")))
    done
    { awk '{print 1 "\t" $0}' "$WORK/$name.1.log"; awk '{print 2 "\t" $0}' "$WORK/$name.2.log"; } >"$WORK/$name.all.tsv"
    awk -F'\t' '$3 == 201 {print $4}' "$WORK/$name.all.tsv" >"$WORK/$name.lat201"
    cut -f4 "$WORK/$name.all.tsv" >"$WORK/$name.latall"
    awk -F'\t' -v failed="$unanswered" '
        NR == 1 || $2 < t0 { t0 = $2 }
        $2 + $4 > tend { tend = $2 + $4 }
        { n++; st[$3]++ }
        $3 == 201 { ok[$1]++; if ($2 + $4 > t201) t201 = $2 + $4 }
        END {
            s = ""; for (k in st) s = s (s == "" ? "" : ",") "\"" k "\":" st[k]
            win = (t201 - t0) / 1e6; all = (tend - t0) / 1e6
            printf "{\"requests\":%d,\"failed\":%d,\"status\":{%s},\"created_1\":%d,\"created_2\":%d,", n, failed, s, ok[1], ok[2]
            printf "\"tickets_201\":%d,\"window_s\":%.3f,\"duration_s\":%.3f,", ok[1] + 2 * ok[2], win, all
            printf "\"reservations_per_s\":%d,\"rps\":%d}\n", (win > 0 ? (ok[1] + ok[2]) / win : 0), (all > 0 ? n / all : 0)
        }' "$WORK/$name.all.tsv" |
        jq -c --argjson l201 "$(pctl_json "$WORK/$name.lat201")" --argjson lall "$(pctl_json "$WORK/$name.latall")" \
            '. + {latency_201_ms: $l201, latency_ms: $lall}' >"$WORK/$name.json"
}

# inventory EVENT TYPE: "cap avail held sold" straight from Redis (lua/ticketd.lua's layout).
inventory() {
    local e=$1 t=$2
    rcli --raw hmget "tk:{${e:0:4}}:inv" "$e:$t:cap" "$e:$t:avail" "$e:$t:held" "$e:$t:sold" | paste -sd' '
}

# stats_route EVENT: GET /events/stats/ as admin; prints the body on 200, returns 1 when
# the route is not there yet (404/405), 2 on any other answer.
stats_route() {
    local code
    code=$(curl -s -o "$WORK/stats.json" -w '%{http_code}' -H "Authorization: Bearer $ADMIN_TOKEN" \
        "$BASE_URL/events/stats/?event_id=$1")
    case "$code" in
    200) cat "$WORK/stats.json" ;;
    404 | 405) return 1 ;;
    *) return 2 ;;
    esac
}

# verify_event NAME EVENT TYPE TICKETS_201 CREATED_201: the no-oversell checks, through
# Redis directly and, when it exists, GET /events/stats/. Writes $WORK/NAME.verify.json.
verify_event() {
    local name=$1 e=$2 t=$3 tickets=$4 created=$5 cap avail held sold blobs=0 blob_tickets=0 stats st=skipped
    read -r cap avail held sold <<<"$(inventory "$e" "$t")"
    check "$name: Redis $t avail + held + sold == cap ($avail + $held + $sold vs $cap)" eq $((avail + held + sold)) "$cap"
    check "$name: Redis $t avail >= 0" test "$avail" -ge 0
    check "$name: tickets in 201 answers == held + sold ($tickets vs $((held + sold)))" eq "$tickets" $((held + sold))
    # Every reservation blob of the event (the shard's hash may hold other events too).
    read -r blobs blob_tickets <<<"$(records_json "tk:{${e:0:4}}:res" | paste - - | cut -f2 |
        jq -r --arg e "$e" 'select(.e == $e) | .t | length' | awk '{n++; s += $1} END {print n + 0, s + 0}')"
    check "$name: reservations in Redis == 201 answers ($blobs vs $created)" eq "$blobs" "$created"
    check "$name: tickets in reservations == held + sold ($blob_tickets vs $((held + sold)))" eq "$blob_tickets" $((held + sold))
    if stats=$(stats_route "$e"); then
        st=checked
        check "$name: /events/stats/ available + held + sold == capacity for every type" \
            jq -e '[.live.ticket_types[] | .available + .held + .sold == .capacity] | all' <<<"$stats"
        check "$name: /events/stats/ held + sold == tickets in 201 answers" \
            jq -e --argjson n "$tickets" '.live.held + .live.sold == $n' <<<"$stats"
    elif (($? == 2)); then
        check "$name: /events/stats/ answers 200" false
        st=failed
    fi
    jq -nc --argjson cap "$cap" --argjson avail "$avail" --argjson held "$held" --argjson sold "$sold" \
        --argjson tickets "$tickets" --argjson blobs "$blobs" --arg st "$st" \
        '{capacity: $cap, avail: $avail, held: $held, sold: $sold, tickets_201: $tickets, reservations_in_redis: $blobs,
          oversold: ([($held + $sold) - $cap, $tickets - $cap, 0] | max),
          invariant_ok: ($avail + $held + $sold == $cap), stats_route: (if $st == "skipped" then "skipped: not implemented" else $st end)}' \
        >"$WORK/$name.verify.json"
}

# scenario_flash EVENT CAPACITY CONNECTIONS: the on-sale. h2load sends enough requests
# (0.6 x capacity per process, 1.8 x capacity tickets in all) to sell the event out.
scenario_flash() {
    local e=$1 cap=$2 conns=$3 n
    n=$(((cap * 6 / 10 + conns / 2 - 1) / (conns / 2) * (conns / 2)))
    log "flash sale: h2load x2, $conns connections, $((2 * n)) reservations of 1-2 tickets for $cap tickets"
    h2load_pair flash "$e" "$conns" -n "$n"
    h2load_summary flash
    check "flash sale: every request answered, 201 or 409 ${WRITE_EXTRA[*]}" answered_with flash 201 409 "${WRITE_EXTRA[@]}"
    local tickets created
    tickets=$(jq .tickets_201 "$WORK/flash.json")
    created=$(jq '.created_1 + .created_2' "$WORK/flash.json")
    verify_event flash "$e" GA "$tickets" "$created"
    check "flash sale: sold out (avail == 0)" eq "$(jq .avail "$WORK/flash.verify.json")" 0
    flash_persistence_lag "$e" "$created"
}

# flash_persistence_lag EVENT CREATED: whether the writer kept pace with the on-sale. Waits
# (up to 30 s) until PostgreSQL has all CREATED reservations of the event, then, per
# reservation, the commit time of its row (track_commit_timestamp) minus its
# reservation_date (the instant Redis made the hold, just before the 201) ->
# .persistence_lag_ms of $WORK/flash.json.
flash_persistence_lag() {
    local e=$1 created=$2 have=-1 i lag
    for ((i = 0; i < 150; i++)); do
        have=$(psql_q -c "select count(*) from reservations where event_id = '$e'" 2>/dev/null) || have=-1
        ((have >= created)) && break
        sleep 0.2
    done
    check "flash sale: every hold in PostgreSQL within 30 s ($have of $created)" eq "$have" "$created"
    lag=$(psql_q -c "select json_build_object(
            'p50', round((percentile_cont(0.5) within group (order by l))::numeric, 3),
            'p99', round((percentile_cont(0.99) within group (order by l))::numeric, 3),
            'max', round(max(l)::numeric, 3), 'n', count(*))
          from (select extract(epoch from pg_xact_commit_timestamp(xmin) - reservation_date) * 1000 as l
                  from reservations where event_id = '$e') x" 2>/dev/null) || lag='{}'
    jq -c --argjson lag "${lag:-"{}"}" '. + {persistence_lag_ms: $lag,
            lag_definition: "commit time of the reservation row in PostgreSQL minus its reservation_date (when Redis made the hold)"}' \
        "$WORK/flash.json" >"$WORK/flash.tmp" && mv "$WORK/flash.tmp" "$WORK/flash.json"
}

# scenario_reserve_peak EVENT DURATION CONNECTIONS: sustained reservations on an event
# far too big to sell out; the peak reservation rate over HTTP.
scenario_reserve_peak() {
    log "reserve peak: h2load x2, $3 connections, ${2}s on a huge event"
    h2load_pair peak "$1" "$3" -D "$2"
    h2load_summary peak
    check "reserve peak: every request answered, 201 ${WRITE_EXTRA[*]}" answered_with peak 201 "${WRITE_EXTRA[@]}"
}

# redis_latency_start / redis_latency_end: Redis's own latency monitor over a scenario,
# per event it reports ("aof-fsync-always": the fsync before every reply to a write, the
# disk's share; "command": one command, FCALL included, running 1 ms or more): in how many
# seconds it reached 1 ms (the monitor keeps each second's slowest), in how many 5 ms,
# and the slowest, as JSON on stdout.
redis_latency_start() {
    rcli config set latency-monitor-threshold 1 >/dev/null
    rcli latency reset >/dev/null
}

redis_latency_end() {
    local ev first=1
    printf '{'
    for ev in aof-fsync-always aof-write command; do
        ((first)) || printf ','
        first=0
        rcli --raw latency history "$ev" | awk -v ev="$ev" '
            NR % 2 == 0 { n++; if ($1 >= 5) over++; if ($1 > max) max = $1 }
            END { printf "\"%s\":{\"seconds_over_1ms\":%d,\"seconds_over_5ms\":%d,\"max_ms\":%d}", ev, n, over, max }'
    done
    printf '}\n'
    rcli config set latency-monitor-threshold 0 >/dev/null
}

# scenario_reserve_half EVENT DURATION CONNECTIONS RATE: the same at a constant total
# rate, for the latency at half the peak. h2load --rps gives each connection a timer
# of 1/rps; connections that all start at once fire together, in bursts of one request
# per connection, which measures queueing behind the burst rather than latency at a
# steady rate. So the connections are started staggered (-r/--rate-period: r per
# millisecond) across one timer interval, which spreads the requests evenly, as wrk2
# would. -r excludes -D, hence -n = rate x duration. It starts once the writers have
# persisted what the peak left in the outbox (at most 60 s): the figure is the latency at
# that rate, with the writers persisting that rate's holds, not the peak's backlog too.
# NAME (default half) names the output; FSYNC, when given, is Redis's appendfsync for the
# run (restored to always after it): half_everysec, the same rate with the disk's fsync
# once a second instead of before every reply, shows the disk's share of the latency.
scenario_reserve_half() {
    local e=$1 duration=$2 conns=$3 rate=$4 name=${5:-half} fsync=${6:-} per half n r backlog waited
    backlog=$(outbox_len)
    waited=$(wait_outbox_empty 60)
    log "reserve at half peak: the peak's $backlog outbox entries persisted in ${waited}s first ($(outbox_len) left)"
    half=$((conns / 2))
    per=$(awk -v r="$rate" -v c="$conns" 'BEGIN { printf "%.3f", r / c }')
    n=$(awk -v p="$per" -v d="$duration" -v h="$half" 'BEGIN { n = int(p * d + 0.5) * h; print (n < h ? h : n) }')
    r=$(awk -v p="$per" -v h="$half" 'BEGIN { r = int(h * p / 1000 + 0.5); print (r < 1 ? 1 : r) }')
    log "reserve at half peak ($name): h2load x2 --rps $per per connection ($rate/s in all), ${duration}s, $r connections/ms${fsync:+, appendfsync $fsync}"
    [[ -z "$fsync" ]] || rcli config set appendfsync "$fsync" >/dev/null
    redis_latency_start
    h2load_pair "$name" "$e" "$conns" -n "$n" -r "$r" --rate-period 1ms --rps "$per"
    redis_latency_end >"$WORK/$name.latency.json"
    [[ -z "$fsync" ]] || rcli config set appendfsync always >/dev/null
    h2load_summary "$name"
    jq -c --argjson target "$rate" --argjson backlog "$backlog" --argjson waited "$waited" --arg fsync "${fsync:-always}" \
        --slurpfile lat "$WORK/$name.latency.json" \
        '. + {target_rps: $target, backlog_before: $backlog, backlog_wait_s: $waited, appendfsync: $fsync, redis_latency: $lat[0]}' \
        "$WORK/$name.json" >"$WORK/$name.tmp" &&
        mv "$WORK/$name.tmp" "$WORK/$name.json"
    check "reserve at half peak ($name): every request answered, 201 ${WRITE_EXTRA[*]}" answered_with "$name" 201 "${WRITE_EXTRA[@]}"
}

# bench_pg_pids: the bench PostgreSQL's postmaster and every process it started (its
# data directory's postmaster.pid names the postmaster).
bench_pg_pids() {
    local dir pid
    dir=$(PGDB=postgres psql_q -c 'show data_directory')
    pid=$(head -n 1 "$dir/postmaster.pid")
    echo "$pid" $(pgrep -P "$pid")
}

# wait_outbox_empty MAX_S: waits (at most MAX_S) until the writers have persisted the
# outbox; prints the seconds it took (to the ms).
wait_outbox_empty() {
    local t0
    t0=$(date +%s.%N)
    while (($(outbox_len) > 0)) && awk -v t0="$t0" -v now="$(date +%s.%N)" -v max="$1" 'BEGIN { exit !(now - t0 < max) }'; do
        sleep 0.2
    done
    awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN { printf "%.3f", now - t0 }'
}

# scenario_reserve_peak_pg_paused EVENT DURATION CONNECTIONS: a control for the peak, not
# a way to run: the same reservations with the bench's PostgreSQL stopped (SIGSTOP)
# while they run, so the two cores are shared by the load generator, ticketd and Redis
# only, as they would be with PostgreSQL on its own machine. It overstates that case a
# little: ticketd's writer thread (decoding the outbox, building the COPY) is idle too.
# The holds wait in the outbox (keep DURATION x rate under TICKETD_OUTBOX_PAUSE) and are
# persisted afterwards (SIGCONT; up to 60 s), before the next scenario.
scenario_reserve_peak_pg_paused() {
    local waited
    waited=$(wait_outbox_empty 60)
    read -r -a PG_PAUSED <<<"$(bench_pg_pids)"
    log "reserve peak, PostgreSQL paused (control): h2load x2, $3 connections, ${2}s (${#PG_PAUSED[@]} PostgreSQL processes stopped)"
    kill -STOP "${PG_PAUSED[@]}"
    h2load_pair peak_pg_paused "$1" "$3" -D "$2"
    kill -CONT "${PG_PAUSED[@]}"
    PG_PAUSED=()
    h2load_summary peak_pg_paused
    check "reserve peak, PostgreSQL paused: every request answered, 201 ${WRITE_EXTRA[*]}" answered_with peak_pg_paused 201 "${WRITE_EXTRA[@]}"
    jq -c --argjson before "$waited" --argjson after "$(wait_outbox_empty 60)" --argjson left "$(outbox_len)" \
        '. + {backlog_wait_before_s: $before, persisted_after_s: $after, outbox_left: $left}' \
        "$WORK/peak_pg_paused.json" >"$WORK/peak_pg_paused.tmp" && mv "$WORK/peak_pg_paused.tmp" "$WORK/peak_pg_paused.json"
    log "reserve peak, PostgreSQL paused: its holds persisted $(jq .persisted_after_s "$WORK/peak_pg_paused.json") s after ($(jq .outbox_left "$WORK/peak_pg_paused.json") left)"
}

# ---------------------------------------------------------------- persistence

# outbox_len: entries waiting in the outbox streams of every shard (tk:{s}:ob), which
# ticketd's writer copies to PostgreSQL and then deletes.
# (One redis-cli for all the XLENs: one per stream took ~5 s with 500 shards.)
outbox_len() {
    rcli --raw --scan --pattern 'tk:{*}:ob' | awk 'NF { print "XLEN " $0 }' | rcli --raw |
        awk '{ total += $1 } END { print total + 0 }'
}

# scenario_drain TIMEOUT_S: waits up to TIMEOUT_S for the writer to empty the outbox and
# reports how fast it went (entries persisted per second). A figure, not a check.
scenario_drain() {
    local entries left seconds
    entries=$(outbox_len)
    log "persistence: waiting for the writer to drain $entries outbox entries (at most $1 s)"
    seconds=$(wait_outbox_empty "$1")
    left=$(outbox_len)
    jq -nc --argjson n "$entries" --argjson left "$left" --argjson s "$seconds" \
        '{entries: $n, left: $left, seconds: $s,
          rows_per_s: (if $n > 0 and $s > 0 then ($n - $left) / $s | floor else null end)}' >"$WORK/drain.json"
    log "persistence: $((entries - left)) entries persisted in that time, $left left"
}

# ---------------------------------------------------------------- funnel

# payments_implemented: PUT /events/reservation/ exists (anything but 405).
payments_implemented() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$BASE_URL/events/reservation/" \
        -H 'Content-Type: application/json' -d '{"reservation_id":"00000000-0000-4000-8000-000000000000"}')
    [[ "$code" != 405 ]]
}

# scenario_funnel EVENT DURATION CONNECTIONS: reserve -> pay -> poll until COMPLETED
# (wrk, one shopper per thread), then the persistence lag: for each purchase, the commit
# time of its COMPLETED row in PostgreSQL minus the moment the client first read
# COMPLETED. Skipped ("skipped: not implemented") while PUT answers 405.
scenario_funnel() {
    local e=$1 duration=$2 conns=$3
    if ! payments_implemented; then
        log "funnel: skipped, PUT /events/reservation/ answers 405 (payments not implemented)"
        echo '{"skipped":"not implemented"}' >"$WORK/funnel.json"
        return
    fi
    log "funnel: wrk $conns shoppers, $duration, payment latency ${PAYMENT_LATENCY_MS} ms"
    rm -rf "$WORK/funnel.d" && mkdir -p "$WORK/funnel.d"
    run_wrk funnel funnel.lua "$conns" "$conns" "$duration" BENCH_EVENT="$e" BENCH_TYPE=GA \
        BENCH_OUT_DIR="$WORK/funnel.d" BENCH_POLL_MS=20
    local extra completed
    extra=$(sed -n 's/^BENCH_FUNNEL //p' "$WORK/funnel.wrk.txt")
    [[ -n "$extra" ]] || extra='{"completed":0,"unexpected":{"no BENCH_FUNNEL line":1}}'
    cat "$WORK"/funnel.d/*.tsv >"$WORK/funnel.tsv" 2>/dev/null || : >"$WORK/funnel.tsv"
    completed=$(wc -l <"$WORK/funnel.tsv")
    check "funnel: purchases completed ($completed)" test "$completed" -gt 0
    check "funnel: every answer was one the contract allows ($(jq -c .unexpected <<<"$extra"))" \
        jq -e '.unexpected | length == 0' <<<"$extra"

    # Wait (up to 15 s) until every purchase the clients saw COMPLETED is COMPLETED in PostgreSQL.
    local sql_load="create temp table f (rid uuid, tid uuid, t_put bigint, t_seen bigint);
        \\copy f from '$WORK/funnel.tsv'
        create temp view j as select f.*, extract(epoch from pg_xact_commit_timestamp(r.xmin)) * 1e6 as t_pg
          from f left join reservations r on r.id = f.rid and r.status = 'COMPLETED';"
    local missing=-1 i
    for ((i = 0; i < 75; i++)); do
        missing=$(psql_q <<<"$sql_load select count(*) from j where t_pg is null;" 2>"$WORK/funnel.psql.err") || missing=-1
        [[ "$missing" == 0 ]] && break
        sleep 0.2
    done
    [[ "$missing" != -1 ]] || log "funnel: psql failed: $(tail -n 3 "$WORK/funnel.psql.err")"
    check "funnel: every completed purchase is COMPLETED in PostgreSQL (missing: $missing)" eq "$missing" 0
    local lag pay
    lag=$(psql_q <<<"$sql_load select json_build_object(
            'p50', round((percentile_cont(0.5) within group (order by (t_pg - t_seen) / 1000))::numeric, 3),
            'p99', round((percentile_cont(0.99) within group (order by (t_pg - t_seen) / 1000))::numeric, 3),
            'max', round(max((t_pg - t_seen) / 1000)::numeric, 3), 'n', count(t_pg)) from j;" 2>>"$WORK/funnel.psql.err") ||
        lag='{}'
    pay=$(psql_q <<<"$sql_load select json_build_object(
            'p50', round((percentile_cont(0.5) within group (order by (t_seen - t_put) / 1000.0))::numeric, 3),
            'p99', round((percentile_cont(0.99) within group (order by (t_seen - t_put) / 1000.0))::numeric, 3)) from j;" \
        2>>"$WORK/funnel.psql.err") || pay='{}'
    jq -c --argjson extra "$extra" --argjson lag "${lag:-"{}"}" --argjson pay "${pay:-"{}"}" --argjson missing "$missing" \
        '. + {funnel: $extra, purchases_per_s: (($extra.completed // 0) / .duration_s | floor),
              persistence_lag_ms: $lag, pay_to_completed_ms: $pay, missing_in_pg: $missing,
              lag_definition: "commit time of the COMPLETED reservation row in PostgreSQL minus the moment the client first read COMPLETED"}' \
        "$WORK/funnel.json" >"$WORK/funnel.tmp" && mv "$WORK/funnel.tmp" "$WORK/funnel.json"
}

# ---------------------------------------------------------------- FCALL baseline

# reserve_keys SHARD: the KEYS of tk_reserve, one a line, read from lua/ticketd.lua's
# header sentence "KEYS are always tk:{s}:inv, res, dl, ..., in that order." so that
# keys the library gains (an outbox) are picked up without editing the harness.
reserve_keys() {
    sed -n '/^--\[\[/,/^\]\]/p' "$REPO/lua/ticketd.lua" | tr '\n' ' ' |
        sed -n 's/.*KEYS are always \([^.]*\)in that order.*/\1/p' | tr ',' '\n' |
        sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e 's/^tk:{s}://' | grep -E '^[a-z_]+$' |
        sed "s/^/tk:{$1}:/"
}

# scenario_fcall NAME EVENT REQUESTS CONNECTIONS PIPELINE: redis-benchmark calling
# tk_reserve directly, one ticket per call. Reservation and ticket ids are UUIDs whose
# last 12 characters are __rand_int__, replaced by redis-benchmark per call and per
# placeholder; the reservation id starts with the event's shard as tk_reserve demands.
# -r must fit a C int: redis-benchmark reads it with atoi, and -r 1000000000000
# overflows to 0 and every placeholder becomes 000000000000 (one reservation, then
# "exists" for every other call). Values are random() % r: 2^31 of them, so a few
# ids per million calls repeat (those calls answer "exists"; counted below).
scenario_fcall() {
    local name=$1 e=$2 n=$3 conns=$4 pipe=$5 s=${2:0:4} keys held0 held1 created
    mapfile -t keys < <(reserve_keys "$s")
    ((${#keys[@]} > 0)) || die "cannot read the KEYS of the functions from lua/ticketd.lua"
    local call=(FCALL tk_reserve "${#keys[@]}" "${keys[@]}" "$e") # then R hold_ms max nlines T amount ticket_id
    local args=("${call[@]}" "${s}0000-0000-4000-8000-__rand_int__" 900000 5 1 GA 1 "ffff0000-0000-4000-8000-__rand_int__")
    # One probe call with fixed ids first: the signature must still match the library.
    local probe
    # (variant digit 9: never one of the benchmark's ids; the clock makes each probe new)
    local ns
    ns=$(date +%s%N)
    probe=$(rcli --raw "${call[@]}" "${s}0000-0000-4000-9000-${ns: -12}" 900000 5 1 GA 1 \
        "ffff0000-0000-4000-9000-${ns: -12}" 2>&1 | head -n1)
    if [[ "$probe" != OK ]]; then
        log "$name: skipped, tk_reserve probe answered: $probe"
        jq -nc --arg p "$probe" '{skipped: ("tk_reserve signature mismatch: " + $p)}' >"$WORK/$name.json"
        check "$name: FCALL tk_reserve probe answers OK" false
        return
    fi
    held0=$(rcli --raw hget "tk:{$s}:inv" "$e:GA:held")
    log "$name: redis-benchmark FCALL tk_reserve, $conns clients, -P $pipe, $n calls"
    redis-benchmark -h 127.0.0.1 -p "$BENCH_REDIS_PORT" -c "$conns" -n "$n" -P "$pipe" --threads 2 \
        -r 2147483647 --csv "${args[@]}" >"$WORK/$name.csv" 2>"$WORK/$name.err" ||
        { cat "$WORK/$name.err" >&2; die "redis-benchmark failed"; }
    held1=$(rcli --raw hget "tk:{$s}:inv" "$e:GA:held")
    created=$((held1 - held0))
    # Independent placeholders: a stored reservation's ticket id has other digits.
    local rid blob same=0
    rid=$(rcli --raw hrandfield "tk:{$s}:res")
    blob=$(records_json "tk:{$s}:res" "$rid" | sed -n 2p)
    [[ "$(jq -r '.t[0][0][24:]' <<<"$blob")" == "${rid:24}" ]] && same=1
    tail -n 1 "$WORK/$name.csv" | tr -d '"' | awk -F, -v n="$n" -v c="$created" -v same="$same" -v tool="redis-benchmark -c $conns -P $pipe --threads 2" '
        { printf "{\"tool\":\"%s\",\"calls\":%d,\"rps\":%d,\"latency_ms\":{\"mean\":%s,\"p50\":%s,\"p99\":%s,\"max\":%s},", tool, n, $2, $3, $5, $7, $8
          printf "\"reservations_created\":%d,\"unique_fraction\":%.5f,\"ticket_id_differs\":%s}\n", c, c / n, same ? "false" : "true" }' \
        >"$WORK/$name.json"
    check "$name: ids unique per call (created $created of $n calls)" \
        awk -v c="$created" -v n="$n" 'BEGIN { exit !(c >= 0.999 * n) }'
    check "$name: ticket id placeholder replaced independently of the reservation id" test "$same" = 0
    local cap avail held sold
    read -r cap avail held sold <<<"$(inventory "$e" GA)"
    check "$name: Redis avail + held + sold == cap" eq $((avail + held + sold)) "$cap"
}
