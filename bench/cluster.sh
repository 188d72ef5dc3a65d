# shellcheck shell=bash
# cluster.sh — bench/run --cluster: reservations on Redis Cluster next to one Redis
# (issue 15), sourced by bench/run after bench/lib.sh.
#
#   scenario_cluster_pair DURATION CONNECTIONS
#       1. one Redis (the harness's own, emptied) and a fresh ticketd: SPREAD_EVENTS events,
#          reserved at once by one h2load each (CONNECTIONS shared out) for DURATION s;
#       2. the same on the `cluster` profile of scripts/services.sh (3 masters + 3
#          replicas on BENCH_CLUSTER_PORT …+5, PostgreSQL on BENCH_CLUSTER_PG_PORT), with
#          the events chosen so that each master owns one;
#       -> $WORK/spread_single.json, $WORK/spread_cluster.json, and per master the Redis
#          CPU each reservation cost there (INFO cpu) and FCALL usec_per_call
#          -> $WORK/spread_cluster.nodes.json
#       3. on the cluster, the catalog grown to CATALOG_EVENTS events, once the outbox is
#          empty: every node's commands/s over IDLE_S with nothing running, the writers'
#          XREADGROUPs apart (issue 14: an idle catalog's cost) -> $WORK/cluster_idle.json
# The cores are shared on one box, so no speed-up is expected: the figure is the ratio
# (cluster over single, target >= 0.9) and the per-node cost the README projects from.

BENCH_CLUSTER_PORT=${BENCH_CLUSTER_PORT:-7201}
BENCH_CLUSTER_PG_PORT=${BENCH_CLUSTER_PG_PORT:-5445}
SPREAD_EVENTS=3
CLUSTER_PORTS=()
for ((i = 0; i < 6; i++)); do
    CLUSTER_PORTS+=($((BENCH_CLUSTER_PORT + i)))
done
CLUSTER_STARTED=0

cluster_services() {
    TICKETD_DATA_DIR=$BENCH_DATA_DIR/cluster TICKETD_CLUSTER_PORT=$BENCH_CLUSTER_PORT TICKETD_CLUSTER_PG_PORT=$BENCH_CLUSTER_PG_PORT \
        "$REPO/scripts/services.sh" "$1" cluster
}

# ccli PORT ARGS...: one cluster node
ccli() {
    local p=$1
    shift
    redis-cli -h 127.0.0.1 -p "$p" "$@"
}

# cluster_master_ports: the masters, one port a line
cluster_master_ports() {
    ccli "${CLUSTER_PORTS[0]}" cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ { split($2, a, "[:@]"); print a[2] }' | sort -n
}

# master_of_event EVENT: the port of the master owning the event's shard
master_of_event() {
    local slot
    slot=$(ccli "${CLUSTER_PORTS[0]}" cluster keyslot "tk:{${1:0:4}}:inv")
    ccli "${CLUSTER_PORTS[0]}" cluster nodes | awk -v s="$slot" '$3 ~ /master/ && $3 !~ /fail/ {
        for (i = 9; i <= NF; i++) {
            n = split($i, r, "-")
            if ($i ~ /^[0-9]/ && r[1] + 0 <= s && s <= r[n] + 0) { split($2, a, "[:@]"); print a[2]; exit }
        }
    }'
}

node_cpu_s() {
    ccli "$1" info cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 } END { printf "%.6f", s }'
}

# h2load_spread NAME DURATION CONNECTIONS EVENT...: one h2load per event, all at once
# (1 ticket for even-numbered events, 2 for odd ones), then $WORK/NAME.json.
h2load_spread() {
    local name=$1 duration=$2 conns=$3 i=0 e pids=() rc=0
    shift 3
    local per=$((conns / $#))
    for e in "$@"; do
        printf '{"event_id":"%s","tickets":[{"type":"GA","amount":%d}]}' "$e" $((i % 2 + 1)) >"$WORK/$name.body$i.json"
        h2load --h1 -t1 -c"$per" -D "$duration" -d "$WORK/$name.body$i.json" -H 'Content-Type: application/json' \
            --log-file="$WORK/$name.$i.log" "$BASE_URL/events/reservation/" >"$WORK/$name.$i.txt" 2>&1 &
        pids+=($!)
        BENCH_PIDS+=($!)
        i=$((i + 1))
    done
    for e in "${pids[@]}"; do
        wait "$e" || rc=$?
    done
    ((rc == 0)) || { cat "$WORK/$name".*.txt >&2; die "h2load $name failed"; }
    cat "$WORK/$name".*.log >"$WORK/$name.all.log"
    awk -F'\t' '$2 == 201 { print $3 }' "$WORK/$name.all.log" >"$WORK/$name.lat201"
    awk -F'\t' '
        NR == 1 || $1 < t0 { t0 = $1 }
        { n++; st[$2]++ }
        $2 == 201 { ok++; if ($1 + $3 > t1) t1 = $1 + $3 }
        END {
            s = ""; for (k in st) s = s (s == "" ? "" : ",") "\"" k "\":" st[k]
            w = (t1 - t0) / 1e6
            printf "{\"requests\":%d,\"status\":{%s},\"created\":%d,\"window_s\":%.3f,\"reservations_per_s\":%d}\n", n, s, ok, w, (w > 0 ? ok / w : 0)
        }' "$WORK/$name.all.log" |
        jq -c --argjson l "$(pctl_json "$WORK/$name.lat201")" --argjson events "$#" '. + {events: $events, latency_201_ms: $l}' >"$WORK/$name.json"
    log "$name: $(jq -r '"\(.reservations_per_s) reservations/s over \(.events) events, p99 \(.latency_201_ms.p99) ms, statuses \(.status | tostring)"' "$WORK/$name.json")"
    check "$name: every request answered 201 ${WRITE_EXTRA[*]}" answered_spread "$name" 201 "${WRITE_EXTRA[@]}"
}

answered_spread() {
    local name=$1
    shift
    local allowed=" $* " s
    while read -r s; do
        [[ "$allowed" == *" $s "* ]] || return 1
    done < <(awk -F'\t' '{ print $2 }' "$WORK/$name.all.log" | sort -u)
}

start_cluster_stores() {
    CLUSTER_STARTED=1
    cluster_services start >"$WORK/cluster-services.log" 2>&1 || { cat "$WORK/cluster-services.log" >&2; die "the cluster did not start"; }
    local p
    for p in $(cluster_master_ports); do
        ccli "$p" flushall >/dev/null
        ccli "$p" config set auto-aof-rewrite-percentage 0 >/dev/null
    done
    psql -X -q -tA -h 127.0.0.1 -p "$BENCH_CLUSTER_PG_PORT" -U postgres -d postgres \
        -c 'drop database if exists ticketd with (force)' -c 'create database ticketd' >/dev/null
}

stop_cluster_stores() {
    ((CLUSTER_STARTED)) || return 0
    cluster_services stop >>"$WORK/cluster-services.log" 2>&1 || log "warning: the cluster did not stop cleanly"
    rm -rf "$BENCH_DATA_DIR/cluster"
    CLUSTER_STARTED=0
}

# shellcheck disable=SC2034  # TICKETD_REDIS_CLUSTER and TICKETD_PG_URL are read by start_ticketd (lib.sh)
scenario_cluster_pair() {
    local duration=$1 conns=$2 events=() e i m
    # 1. one Redis, emptied, and a ticketd of its own
    stop_ticketd
    rcli flushall >/dev/null
    PGDB=postgres psql_q -c 'drop database if exists ticketd with (force)' -c 'create database ticketd' >/dev/null
    start_ticketd
    for ((i = 0; i < SPREAD_EVENTS; i++)); do
        events+=("$(create_event "Spread $i" GA:30.00:5000000)")
    done
    h2load_spread spread_single "$duration" "$conns" "${events[@]}"
    stop_ticketd
    stop_stores

    # 2. the cluster: one event on each master
    start_cluster_stores
    TICKETD_REDIS_CLUSTER=$(cluster_services env | sed -n "s/^export TICKETD_REDIS_CLUSTER=//p" | tr -d "'\"")
    TICKETD_PG_URL="postgresql://postgres@127.0.0.1:$BENCH_CLUSTER_PG_PORT/ticketd"
    start_ticketd
    local -A taken=()
    events=()
    for ((i = 0; i < 60 && ${#events[@]} < SPREAD_EVENTS; i++)); do
        e=$(create_event "Spread cluster $i" GA:30.00:5000000)
        m=$(master_of_event "$e")
        [[ -z "${taken[$m]:-}" ]] || continue
        taken[$m]=1
        events+=("$e")
    done
    ((${#events[@]} == SPREAD_EVENTS)) || die "could not place $SPREAD_EVENTS events on distinct masters"
    local masters
    masters=$(for e in "${events[@]}"; do master_of_event "$e"; done | tr '\n' ' ')
    log "cluster: events on masters $masters"
    declare -A cpu0=()
    for m in $masters; do
        ccli "$m" config resetstat >/dev/null
        cpu0[$m]=$(node_cpu_s "$m")
    done
    h2load_spread spread_cluster "$duration" "$conns" "${events[@]}"
    # per master: its event's reservations, its CPU and FCALL time
    i=0
    for e in "${events[@]}"; do
        m=$(master_of_event "$e")
        local made calls_usec cpu1
        made=$(awk -F'\t' '$2 == 201' "$WORK/spread_cluster.$i.log" | wc -l)
        cpu1=$(node_cpu_s "$m")
        calls_usec=$(ccli "$m" info commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_fcall:/ { print $3, $5 }')
        jq -nc --arg node "127.0.0.1:$m" --argjson made "$made" --argjson cpu "$(awk -v a="${cpu0[$m]}" -v b="$cpu1" 'BEGIN { printf "%.6f", b - a }')" \
            --argjson calls "${calls_usec% *}" --argjson usec "${calls_usec#* }" \
            '{node: $node, reservations: $made, redis_cpu_s: $cpu,
              redis_cpu_us_per_reservation: (if $made > 0 then ($cpu * 1e6 / $made * 100 | round) / 100 else null end),
              fcall_usec_per_call: (if $calls > 0 then ($usec / $calls * 100 | round) / 100 else null end)}'
        i=$((i + 1))
    done | jq -cs '{nodes: .}' >"$WORK/spread_cluster.nodes.json"
    log "cluster per master: $(jq -c '[.nodes[] | {node, redis_cpu_us_per_reservation, fcall_usec_per_call}]' "$WORK/spread_cluster.nodes.json")"
    for e in "${events[@]}"; do
        read -r cap avail held sold <<<"$(cluster_inventory "$e")"
        check "cluster: avail + held + sold == cap for event ${e:0:8}" eq $((avail + held + sold)) "$cap"
    done
    cluster_idle "$CATALOG_EVENTS" "$IDLE_S"
    stop_ticketd
    stop_cluster_stores
}

# cluster_ops: "all xreadgroup" — commands processed so far by every node (Lua's included),
# and the XREADGROUPs among them
cluster_ops() {
    local p
    for p in "${CLUSTER_PORTS[@]}"; do
        ccli "$p" info commandstats
    done | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_/ { all += $3 } /^cmdstat_xreadgroup:/ { rd += $3 } END { print all + 0, rd + 0 }'
}

# outbox_depth_metric: ticketd's own gauge of the outbox entries not yet persisted
outbox_depth_metric() {
    curl -s "$BASE_URL/metrics" | awk '$1 == "ticketd_outbox_depth" { print $2; found = 1 } END { if (!found) print -1 }'
}

# cluster_idle EVENTS SECONDS: the cluster's catalog grown to EVENTS events; once the
# writers have emptied the outbox (at most 60 s), every node's commands/s over SECONDS
cluster_idle() {
    local want=$1 secs=$2 have i a0 a1 r0 r1 t0 t1 waited=0
    have=$(psql -X -q -tA -h 127.0.0.1 -p "$BENCH_CLUSTER_PG_PORT" -U postgres -d ticketd -c 'select count(*) from events')
    log "cluster: idle Redis load with $want events in all (${secs}s)"
    for ((i = have; i < want; i++)); do
        create_event "Cluster Filler $i" GA:20.00:100 >/dev/null
    done
    while (($(outbox_depth_metric) != 0 && waited < 300)); do
        sleep 0.2
        waited=$((waited + 1))
    done
    sleep 2 # every new shard met once by the sweeper, the gauge and the writers
    read -r a0 r0 <<<"$(cluster_ops)"
    t0=$(date +%s.%N)
    sleep "$secs"
    read -r a1 r1 <<<"$(cluster_ops)"
    t1=$(date +%s.%N)
    jq -nc --argjson events "$want" --argjson a $((a1 - a0)) --argjson r $((r1 - r0)) --arg t0 "$t0" --arg t1 "$t1" '
        (($t1 | tonumber) - ($t0 | tonumber)) as $s |
        {events: $events, seconds: ($s * 10 | round / 10), all_ops_per_s: ($a / $s | floor), xreadgroup_per_s: ($r / $s | floor)}' \
        >"$WORK/cluster_idle.json"
    log "cluster: idle with $want events: $(jq -r '"\(.all_ops_per_s) commands/s on all nodes, \(.xreadgroup_per_s) of them XREADGROUP"' "$WORK/cluster_idle.json")"
}

# cluster_inventory EVENT: "cap avail held sold" of its GA type, from its master
cluster_inventory() {
    ccli "$(master_of_event "$1")" --raw hmget "tk:{${1:0:4}}:inv" "$1:GA:cap" "$1:GA:avail" "$1:GA:held" "$1:GA:sold" | tr '\n' ' '
}
