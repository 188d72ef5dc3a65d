#!/usr/bin/env bash
# services.sh — run the project-local Redis 7 and PostgreSQL 15 that ticketd uses.
#
#   scripts/services.sh {start|stop|status|env} [PROFILE]      (profile: dev)
#   scripts/services.sh {start|stop}-{redis|postgres} [PROFILE]   (one store alone)
#
# Each profile has its own ports and data so the dev server and the test suite never
# share state:  dev = Redis 6390, PostgreSQL 5440;  test = Redis 6391, PostgreSQL 5441;
# cluster = Redis Cluster on 7001-7006, PostgreSQL 5442; cluster-test = Redis Cluster on
# 7101-7106, PostgreSQL 5443. The cluster profiles (3 masters + 3 replicas on loopback) live
# in scripts/services-cluster.sh, which this script sources; its header tells how the cluster
# is created, restarted and stopped.
# Redis runs with maxmemory (TICKETD_REDIS_MAXMEMORY, default 1gb, every profile, every
# cluster node) and policy noeviction: at the limit it refuses writes, which ticketd answers
# with 503, instead of growing until the kernel kills it or evicting inventory. `start` also
# applies it to a Redis that is already running.
# Overrides: TICKETD_REDIS_PORT (single profiles), TICKETD_CLUSTER_PORT (the first of the six
# cluster ports), TICKETD_CLUSTER_NODE_TIMEOUT (ms, default 2000), TICKETD_PG_PORT (every
# profile; TICKETD_CLUSTER_PG_PORT, when set, wins for the cluster profiles so that one shell
# can run both kinds), TICKETD_DATA_DIR (the profile dir, default <repo>/.data/<profile>).
# Redis keeps its files in <profile dir>/redis (cluster: <profile dir>/redis-<port>),
# PostgreSQL in <profile dir>/pg (log pg.log, socket dir pg-run beside it).
#
# `start` and `stop` are idempotent and recover from stale pid files left by a crash; on a
# cluster `start` also restarts a node killed with -9. `status` exits 0 when both services
# answer (every cluster node healthy), 3 otherwise. `env` prints exports for eval:
# TICKETD_REDIS_URL (cluster: TICKETD_REDIS_CLUSTER, the six seed nodes) and TICKETD_PG_URL.
# (Not the ports: an exported TICKETD_REDIS_PORT would then override the other profile's
# port too.)
set -euo pipefail

usage() {
    echo "usage: $0 {start|stop|status|env|start-redis|stop-redis|start-postgres|stop-postgres}" \
        "[dev|test|cluster|cluster-test]" >&2
    exit 2
}

ACTION=${1:-}
PROFILE=${2:-dev}
case "$PROFILE" in
dev) REDIS_PORT=${TICKETD_REDIS_PORT:-6390} PG_PORT=${TICKETD_PG_PORT:-5440} ;;
test) REDIS_PORT=${TICKETD_REDIS_PORT:-6391} PG_PORT=${TICKETD_PG_PORT:-5441} ;;
cluster) CLUSTER_PORT=${TICKETD_CLUSTER_PORT:-7001} PG_PORT=${TICKETD_CLUSTER_PG_PORT:-${TICKETD_PG_PORT:-5442}} ;;
cluster-test) CLUSTER_PORT=${TICKETD_CLUSTER_PORT:-7101} PG_PORT=${TICKETD_CLUSTER_PG_PORT:-${TICKETD_PG_PORT:-5443}} ;;
*) usage ;;
esac

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DATA_DIR=${TICKETD_DATA_DIR:-$REPO/.data/$PROFILE}
[[ "$DATA_DIR" == /* ]] || DATA_DIR=$PWD/$DATA_DIR
REDIS_DIR=$DATA_DIR/redis
REDIS_MAXMEMORY=${TICKETD_REDIS_MAXMEMORY:-1gb}
PG_BIN=/usr/lib/postgresql/15/bin
DB_NAME=ticketd
TIMEOUT=10 # seconds to wait for a service to come up or go down

log() { echo "services[$PROFILE]: $*"; }
die() {
    echo "services[$PROFILE]: $*" >&2
    exit 1
}

# PostgreSQL refuses to run as root, so as root its tools run as the postgres user
# (from / so that an unreadable working directory doesn't upset them).
as_pg() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# pid_alive FILE COMM: the pid on FILE's first line is a live (not zombie) process
# named COMM. Checking the name keeps a recycled pid from passing for our server.
pid_alive() {
    local pid stat comm
    pid=$(head -n 1 "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    read -r stat comm < <(ps -o stat=,comm= -p "$pid" 2>/dev/null) || return 1
    [[ "$stat" != Z* && "$comm" == "$2"* ]]
}

# rm_stale FILE COMM: remove a pid/lock file whose process is gone (crash, kill -9).
rm_stale() {
    if [[ -f "$1" ]] && ! pid_alive "$1" "$2"; then
        rm -f "$1"
        log "removed stale $1"
    fi
}

# wait_until CMD...: retry CMD for up to TIMEOUT seconds.
wait_until() {
    local i
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

# Where PostgreSQL's files live. Normally beside Redis under DATA_DIR; but when the
# postgres user cannot reach DATA_DIR (say the repo is under /root, mode 700), a
# per-checkout directory under /tmp is used instead. The socket dir also moves to
# /tmp when its path would be too long for a Unix socket (108 bytes).
resolve_pg_paths() {
    local hash
    hash=$(printf '%s' "$DATA_DIR" | sha256sum | cut -c1-8)
    PG_HOME=$DATA_DIR
    if ((EUID == 0)) && ! runuser -u postgres -- test -x "$DATA_DIR" 2>/dev/null; then
        PG_HOME=/tmp/ticketd-$PROFILE-$hash
    fi
    PG_DATA=$PG_HOME/pg
    PG_LOG=$PG_HOME/pg.log
    PG_SOCK=$PG_HOME/pg-run
    ((${#PG_SOCK} <= 80)) || PG_SOCK=/tmp/ticketd-$PROFILE-$hash-run
}

redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
redis_down() { ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; }
pg_up() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; }
pg_down() { ! pg_up; }

start_redis() {
    local pidfile=$REDIS_DIR/redis.pid
    if redis_up; then
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config set maxmemory "$REDIS_MAXMEMORY" >/dev/null &&
            redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config set maxmemory-policy noeviction >/dev/null ||
            die "cannot set maxmemory on the running redis"
        log "redis already running on 127.0.0.1:$REDIS_PORT (maxmemory $REDIS_MAXMEMORY)"
        return
    fi
    mkdir -p "$REDIS_DIR"
    if pid_alive "$pidfile" redis-server; then
        log "redis process exists but does not answer yet; waiting"
    else
        rm_stale "$pidfile" redis-server
        redis-server --daemonize yes --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
            --dir "$REDIS_DIR" --appendonly yes --appendfsync always --save '' \
            --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy noeviction \
            --pidfile "$pidfile" --logfile "$REDIS_DIR/redis.log"
    fi
    if ! wait_until redis_up; then
        tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
        die "redis did not answer PING on port $REDIS_PORT within ${TIMEOUT}s"
    fi
    log "redis running on 127.0.0.1:$REDIS_PORT (data $REDIS_DIR)"
}

# Create an empty cluster, owned by postgres, trusting local connections.
init_pg() {
    local locale=C
    locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' && locale=C.UTF-8
    rm -rf "$PG_DATA" # no PG_VERSION: nothing here, or a half-finished initdb
    mkdir -p "$PG_DATA"
    ((EUID != 0)) || chown postgres: "$PG_DATA"
    chmod 700 "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust --username=postgres -E UTF8 \
        --locale="$locale" >"$PG_HOME/initdb.log" 2>&1 ||
        die "initdb failed, see $PG_HOME/initdb.log"
}

start_pg() {
    resolve_pg_paths
    if pg_up; then
        log "postgres already running on 127.0.0.1:$PG_PORT"
        return
    fi
    [[ "$PG_HOME" == "$DATA_DIR" ]] || log "postgres cannot reach $DATA_DIR; using $PG_HOME"
    mkdir -p "$PG_HOME" "$PG_SOCK"
    touch "$PG_LOG"
    ((EUID != 0)) || chown postgres: "$PG_SOCK" "$PG_LOG"
    [[ -f "$PG_DATA/PG_VERSION" ]] || init_pg

    if pid_alive "$PG_DATA/postmaster.pid" postgres; then
        log "postgres process exists but is not ready yet; waiting"
    else
        # A kill -9'd postmaster leaves its pid file and its socket lock behind.
        rm_stale "$PG_DATA/postmaster.pid" postgres
        rm_stale "$PG_SOCK/.s.PGSQL.$PG_PORT.lock" postgres
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" \
            -o "-p $PG_PORT -k '$PG_SOCK' -c listen_addresses=127.0.0.1" start >/dev/null || true
    fi
    if ! wait_until pg_up; then
        tail -n 20 "$PG_LOG" >&2 || true
        die "postgres did not become ready on port $PG_PORT within ${TIMEOUT}s"
    fi

    local psql=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
    if [[ -z "$("${psql[@]}" -tAc "select 1 from pg_database where datname='$DB_NAME'")" ]]; then
        "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB_NAME"
        log "created database $DB_NAME"
    fi
    log "postgres running on 127.0.0.1:$PG_PORT (data $PG_DATA)"
}

# `shutdown` (not `nosave`): with AOF on, Redis fsyncs the log and loses nothing.
# Only our own server (its pid file in our data dir) is stopped, as for PostgreSQL:
# a Redis someone else runs on the same port is left alone.
stop_redis() {
    local pidfile=$REDIS_DIR/redis.pid
    if pid_alive "$pidfile" redis-server; then
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
        wait_until redis_down || die "redis on port $REDIS_PORT did not stop"
        log "redis stopped"
    elif redis_up; then
        log "redis on port $REDIS_PORT is not ours ($REDIS_DIR); left alone"
    else
        log "redis not running"
    fi
}

stop_pg() {
    resolve_pg_paths
    if pid_alive "$PG_DATA/postmaster.pid" postgres; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$TIMEOUT" stop >/dev/null
        log "postgres stopped"
    elif pg_up; then
        log "postgres on port $PG_PORT is not ours ($PG_DATA); left alone"
    else
        log "postgres not running"
    fi
}

redis_status() {
    if redis_up; then
        log "redis running on 127.0.0.1:$REDIS_PORT (data $REDIS_DIR)"
    else
        log "redis stopped (port $REDIS_PORT)"
        return 3
    fi
}

redis_env() { echo "export TICKETD_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"; }

# The cluster profiles replace start_redis, stop_redis, redis_status and redis_env.
case "$PROFILE" in
cluster*) source "$REPO/scripts/services-cluster.sh" ;;
esac

status() {
    local rc=0
    resolve_pg_paths
    redis_status || rc=3
    if pg_up; then
        log "postgres running on 127.0.0.1:$PG_PORT (data $PG_DATA)"
    else
        log "postgres stopped (port $PG_PORT)"
        rc=3
    fi
    return "$rc"
}

case "$ACTION" in
start)
    start_redis
    start_pg
    ;;
stop)
    stop_redis
    stop_pg
    ;;
# one store alone, for the tests that take one down and bring it back
start-redis) start_redis ;;
stop-redis) stop_redis ;;
start-postgres) start_pg ;;
stop-postgres) stop_pg ;;
status) status ;;
env)
    redis_env
    echo "export TICKETD_PG_URL=postgresql://postgres@127.0.0.1:$PG_PORT/$DB_NAME"
    ;;
*) usage ;;
esac
