# shellcheck shell=bash
# services-cluster.sh — the Redis Cluster half of scripts/services.sh (profiles `cluster` and
# `cluster-test`); sourced by it after its helpers (log, die, pid_alive, rm_stale, wait_until)
# and settings (DATA_DIR, CLUSTER_PORT, REDIS_MAXMEMORY), never run alone. It replaces the
# single-Redis start_redis/stop_redis/redis_status/redis_env with six cluster nodes.
#
# Six redis-server on 127.0.0.1, ports CLUSTER_PORT … CLUSTER_PORT+5 (cluster bus +10000), each
# with its files (AOF, nodes.conf, redis.log, redis.pid) in <profile dir>/redis-<port>/, the same
# AOF and maxmemory settings as the single profiles, and cluster-enabled with:
#   cluster-node-timeout TICKETD_CLUSTER_NODE_TIMEOUT ms (default 2000): a dead master is failed
#     over in a few seconds, which is what tests and the fault scenarios want;
#   cluster-replica-validity-factor 0: a replica is always promotable, however long its link to
#     the master was down (a slightly stale replica beats a slot range down for good);
#   cluster-require-full-coverage no: while one master is down only its slots refuse commands
#     (CLUSTERDOWN), the other masters keep selling.
# The first `start` creates the cluster (3 masters + 3 replicas) with
# `redis-cli --cluster create --cluster-replicas 1 --cluster-yes`. Later starts restart any node
# that is down (killed with -9, say): it rejoins with its nodes.conf — a master that lost its
# slots to a failover comes back as a replica. A node whose directory was wiped is added back as
# a replica (`--cluster add-node --cluster-slave`) and its old identity forgotten. `start`
# returns once every node reports cluster_state:ok with all 16384 slots served and every
# replica's link to its master is up (TICKETD_CLUSTER_TIMEOUT seconds, default 30).
# `stop` shuts the replicas down before the masters, so stopping never triggers a failover.
# A profile dir belongs to one set of ports: `start` refuses when it holds nodes of others
# (a forgotten TICKETD_CLUSTER_PORT would otherwise make a second cluster beside the first).

CLUSTER_NODES=6
NODE_TIMEOUT=${TICKETD_CLUSTER_NODE_TIMEOUT:-2000}
CLUSTER_TIMEOUT=${TICKETD_CLUSTER_TIMEOUT:-30}
NODE_PORTS=()
for ((i = 0; i < CLUSTER_NODES; i++)); do NODE_PORTS+=($((CLUSTER_PORT + i))); done
unset i

node_dir() { echo "$DATA_DIR/redis-$1"; }
node_cli() {
    local port=$1
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}
node_up() { node_cli "$1" ping 2>/dev/null | grep -q PONG; }
node_down() { ! node_cli "$1" ping >/dev/null 2>&1; }
node_ours() { pid_alive "$(node_dir "$1")/redis.pid" redis-server; }

# cluster_field PORT NAME: one field of the node's CLUSTER INFO (empty when it does not answer)
cluster_field() { node_cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }
# replication_field PORT NAME: one field of the node's INFO replication
replication_field() { node_cli "$1" info replication 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

# A node that has never met another one: no cluster created yet, or its directory was wiped.
node_lonely() {
    [[ "$(cluster_field "$1" cluster_known_nodes)" == 1 && "$(cluster_field "$1" cluster_slots_assigned)" == 0 ]]
}

# node_healthy PORT: the node sees a working cluster serving every slot and, as a replica,
# is in sync with its master.
node_healthy() {
    local port=$1
    [[ "$(cluster_field "$port" cluster_state)" == ok &&
        "$(cluster_field "$port" cluster_slots_ok)" == 16384 ]] || return 1
    [[ "$(replication_field "$port" role)" != slave ]] ||
        [[ "$(replication_field "$port" master_link_status)" == up ]]
}

# node_summary PORT: what node_healthy looked at, for messages
node_summary() {
    local port=$1 role text
    role=$(replication_field "$port" role)
    text="cluster_state $(cluster_field "$port" cluster_state), slots ok $(cluster_field "$port" cluster_slots_ok), role ${role:-?}"
    [[ "$role" != slave ]] || text+=", link to master $(replication_field "$port" master_link_status)"
    echo "$text"
}

cluster_healthy() {
    local port
    for port in "${NODE_PORTS[@]}"; do node_healthy "$port" || return 1; done
}

launch_node() {
    local port=$1 dir
    dir=$(node_dir "$port")
    if node_up "$port"; then
        if ! node_cli "$port" config set maxmemory "$REDIS_MAXMEMORY" >/dev/null ||
            ! node_cli "$port" config set maxmemory-policy noeviction >/dev/null; then
            die "cannot set maxmemory on the running node $port"
        fi
        return
    fi
    mkdir -p "$dir"
    if pid_alive "$dir/redis.pid" redis-server; then
        log "node $port exists but does not answer yet; waiting"
        return
    fi
    rm_stale "$dir/redis.pid" redis-server
    local how="started"
    [[ ! -f "$dir/nodes.conf" ]] || how="restarted (rejoins with its nodes.conf)"
    redis-server --daemonize yes --port "$port" --bind 127.0.0.1 --protected-mode yes \
        --dir "$dir" --appendonly yes --appendfsync always --save '' \
        --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy noeviction \
        --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout "$NODE_TIMEOUT" --cluster-replica-validity-factor 0 \
        --cluster-require-full-coverage no \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    log "node $port $how"
}

# forget_ghosts_of PORT: every other node forgets the identities that 127.0.0.1:PORT had
# before its directory was wiped. They would linger as failed slot-less nodes, listed with the
# address, or with none (noaddr) once the other nodes have met the new identity there.
forget_ghosts_of() {
    local port=$1 self id other
    self=$(node_cli "$port" cluster myid 2>/dev/null | tr -d '\r')
    for other in "${NODE_PORTS[@]}"; do
        [[ "$other" != "$port" ]] || continue
        while read -r id; do
            [[ -n "$id" && "$id" != "$self" ]] || continue
            node_cli "$other" cluster forget "$id" >/dev/null 2>&1 || true
        done < <(node_cli "$other" cluster nodes 2>/dev/null | awk -v a="127.0.0.1:$port@" \
            'NF <= 8 && (index($2, a) == 1 || $3 ~ /noaddr/) { print $1 }')
    done
}

# Create the cluster when no node has met another; add back a wiped node as a replica.
form_cluster() {
    local port lonely=() formed=() addrs=()
    for port in "${NODE_PORTS[@]}"; do
        if node_lonely "$port"; then lonely+=("$port"); else formed+=("$port"); fi
        addrs+=("127.0.0.1:$port")
    done
    ((${#lonely[@]})) || return 0
    if ((${#formed[@]} == 0)); then
        log "creating the cluster: 3 masters + 3 replicas"
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
            >"$DATA_DIR/cluster-create.log" 2>&1 </dev/null || {
            tail -n 20 "$DATA_DIR/cluster-create.log" >&2
            die "redis-cli --cluster create failed (see $DATA_DIR/cluster-create.log)"
        }
        return
    fi
    for port in "${lonely[@]}"; do
        log "node $port lost its cluster state; adding it back as a replica"
        forget_ghosts_of "$port"
        redis-cli --cluster add-node "127.0.0.1:$port" "127.0.0.1:${formed[0]}" --cluster-slave \
            >>"$DATA_DIR/cluster-create.log" 2>&1 </dev/null ||
            die "redis-cli --cluster add-node 127.0.0.1:$port failed (see $DATA_DIR/cluster-create.log)"
    done
}

# The profile dir holds one cluster: nodes of other ports there mean a different
# TICKETD_CLUSTER_PORT than last time, and starting would make a second cluster beside it.
check_ports_match() {
    local dir port
    for dir in "$DATA_DIR"/redis-*; do
        [[ -d "$dir" ]] || continue
        port=${dir##*/redis-}
        [[ " ${NODE_PORTS[*]} " == *" $port "* ]] ||
            die "$DATA_DIR holds cluster node $port, not one of ${NODE_PORTS[0]}-${NODE_PORTS[-1]}:" \
                "set TICKETD_CLUSTER_PORT as when it was created, or another TICKETD_DATA_DIR"
    done
}

start_redis() {
    local port down=()
    mkdir -p "$DATA_DIR"
    check_ports_match
    for port in "${NODE_PORTS[@]}"; do
        node_up "$port" || down+=("$port")
        launch_node "$port"
    done
    for port in "${down[@]}"; do
        wait_until node_up "$port" || {
            tail -n 20 "$(node_dir "$port")/redis.log" >&2 || true
            die "cluster node $port did not answer PING within ${TIMEOUT}s"
        }
    done
    form_cluster
    if ! TIMEOUT=$CLUSTER_TIMEOUT wait_until cluster_healthy; then
        for port in "${NODE_PORTS[@]}"; do
            node_healthy "$port" || log "node $port: $(node_summary "$port")"
        done
        die "the cluster did not become healthy within ${CLUSTER_TIMEOUT}s"
    fi
    log "redis cluster running on 127.0.0.1:${NODE_PORTS[0]}-${NODE_PORTS[-1]} (data $DATA_DIR/redis-<port>)"
}

# Only our own nodes (pid file in our data dir) are stopped; replicas first.
stop_redis() {
    local port masters=() replicas=() stopped=0
    for port in "${NODE_PORTS[@]}"; do
        if node_ours "$port"; then
            if [[ "$(replication_field "$port" role)" == slave ]]; then replicas+=("$port"); else masters+=("$port"); fi
        elif node_up "$port"; then
            log "redis on port $port is not ours ($(node_dir "$port")); left alone"
        fi
    done
    for port in "${replicas[@]}" "${masters[@]}"; do
        node_cli "$port" shutdown >/dev/null 2>&1 || true
        wait_until node_down "$port" || die "cluster node $port did not stop"
        stopped=$((stopped + 1))
    done
    if ((stopped)); then log "redis cluster stopped ($stopped nodes)"; else log "redis cluster not running"; fi
}

redis_status() {
    local port rc=0
    for port in "${NODE_PORTS[@]}"; do
        if ! node_up "$port"; then
            log "cluster node $port stopped"
            rc=3
        elif ! node_healthy "$port"; then
            log "cluster node $port up but not healthy: $(node_summary "$port")"
            rc=3
        fi
    done
    ((rc)) || log "redis cluster running on 127.0.0.1:${NODE_PORTS[0]}-${NODE_PORTS[-1]}, every node ok"
    return "$rc"
}

redis_env() {
    local port seeds=()
    for port in "${NODE_PORTS[@]}"; do seeds+=("127.0.0.1:$port"); done
    echo "export TICKETD_REDIS_CLUSTER=$(
        IFS=,
        echo "${seeds[*]}"
    )"
}
