# shellcheck shell=bash
# cluster.sh — the Redis Cluster side of the fault harness (sourced by lib.sh).
#
# With FAULT_CLUSTER=1, fault_init runs the scenario on scripts/services.sh's cluster-test
# profile: six redis-server (3 masters, 3 replicas) from TICKETD_CLUSTER_PORT (default
# 7101) and its own PostgreSQL (TICKETD_CLUSTER_PG_PORT, default 5443; never the test
# profile's TICKETD_PG_PORT, which the suite around it exports). A cluster has one
# database, so the scenario cannot have a Redis database of its own: its events are new
# (their shards are random) and it flushes nothing. Helpers here find the master that
# owns a shard, kill it, and put the cluster back the way it was (the killed node
# restarted as a replica, every slot covered) for the scenarios after it.

CLUSTER_PORT=${TICKETD_CLUSTER_PORT:-7101}
CLUSTER_PORTS=()
CLUSTER_SEEDS=
FAULT_CLUSTER_WAS_UP=1

cluster_services() { "$FAULT_REPO/scripts/services.sh" "$1" cluster-test; }

# cluster_cli ARGS...: redis-cli -c on the first node that accepts a connection
cluster_cli() {
    local p
    for p in "${CLUSTER_PORTS[@]}"; do
        redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1 || continue
        redis-cli -c -h 127.0.0.1 -p "$p" --raw "$@"
        return
    done
    return 1
}

# cluster_node_cli PORT ARGS...: one node, no redirects
cluster_node_cli() {
    local p=$1
    shift
    redis-cli -h 127.0.0.1 -p "$p" --raw "$@"
}

cluster_ok() {
    [[ "$(cluster_cli cluster info 2>/dev/null | tr -d '\r' | awk -F: '$1 == "cluster_state" { print $2 }')" == ok ]]
}

# cluster_master_of KEY: the port of the master owning KEY's slot, as the nodes now see it
# (CLUSTER NODES: id, host:port@bus, flags, master id, ping, pong, epoch, link, slot ranges...)
cluster_master_of() {
    local slot
    slot=$(cluster_cli cluster keyslot "$1")
    cluster_cli cluster nodes | awk -v s="$slot" '$3 ~ /master/ && $3 !~ /fail/ {
        for (i = 9; i <= NF; i++) {
            n = split($i, r, "-")
            if (r[1] + 0 <= s && s <= r[n] + 0 && $i ~ /^[0-9]/) { split($2, a, "[:@]"); print a[2]; exit }
        }
    }'
}

# cluster_masters: the ports of the nodes that are masters now, one a line
cluster_masters() {
    cluster_cli cluster nodes | awk '$3 ~ /master/ && $3 !~ /fail/ { split($2, a, "[:@]"); print a[2] }' | sort -n
}

# cluster_pid PORT: the redis-server process listening there
cluster_pid() { cluster_node_cli "$1" info server | tr -d '\r' | awk -F: '$1 == "process_id" { print $2 }'; }

# fault_cluster_stores: fault_init's store set-up in cluster mode
fault_cluster_stores() {
    local i envs
    for ((i = 0; i < 6; i++)); do
        CLUSTER_PORTS+=($((CLUSTER_PORT + i)))
    done
    export TICKETD_CLUSTER_PORT=$CLUSTER_PORT
    PG_PORT=${TICKETD_CLUSTER_PG_PORT:-5443}
    export TICKETD_CLUSTER_PG_PORT=$PG_PORT
    FAULT_CLUSTER_WAS_UP=0 FAULT_PG_WAS_UP=0
    cluster_ok && FAULT_CLUSTER_WAS_UP=1
    pg_up && FAULT_PG_WAS_UP=1
    cluster_services start >/dev/null || {
        fail "scripts/services.sh start cluster-test failed"
        fault_finish
    }
    envs=$(cluster_services env)
    CLUSTER_SEEDS=$(sed -n 's/^export TICKETD_REDIS_CLUSTER=//p' <<<"$envs" | tr -d "'\"")
    [[ -n "$CLUSTER_SEEDS" ]] || {
        fail "scripts/services.sh env cluster-test printed no TICKETD_REDIS_CLUSTER"
        fault_finish
    }
    wait_for 20 cluster_ok || fail "the cluster is not ok 20 s after start"
    log "cluster $CLUSTER_SEEDS (masters: $(cluster_masters | tr '\n' ' ')), postgres 127.0.0.1:$PG_PORT"
    FAULT_DB=tk_fault_${FAULT_NAME}_$$
    psql_admin "DROP DATABASE IF EXISTS $FAULT_DB WITH (FORCE)" >/dev/null
    psql_admin "CREATE DATABASE $FAULT_DB" >/dev/null
}

# fault_cluster_restore: every node running again and the cluster ok (a killed master
# comes back as a replica of the one promoted in its place)
fault_cluster_restore() {
    cluster_services start >/dev/null 2>&1 || return 1
    wait_for 30 cluster_ok
}

fault_cluster_cleanup() {
    fault_cluster_restore || log "the cluster did not come back to ok after the scenario"
    [[ -z "$FAULT_DB" || "${FAULT_KEEP:-0}" == 1 ]] || psql_admin "DROP DATABASE IF EXISTS $FAULT_DB WITH (FORCE)" >/dev/null 2>&1
    ((FAULT_CLUSTER_WAS_UP == 1 || FAULT_PG_WAS_UP == 1)) || cluster_services stop >/dev/null 2>&1
}
