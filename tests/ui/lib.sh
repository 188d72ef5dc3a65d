# lib.sh — what the browser tests (tests/ui/test_*.sh) share: the paths, the test stores'
# ports, a fresh database of their own on the test PostgreSQL, a development ticketd on a
# free port, and one way to fail. Sourced after `set -euo pipefail`; the caller sets
# UI_NAME (for messages) and UI_DB (the database's name) first.
#
#   ui_start_ticketd ENV=VALUE...   creates the database, starts ticketd with the extra
#                                   settings, waits for /healthz; its log is $out/ticketd.log
#   ui_free_port                    prints a port nobody listens on
#   ui_fail MESSAGE                 says why and the CTest-readable "0 passed, 1 failed"
# The EXIT trap stops ticketd (and anything the caller registers in ui_on_exit) and drops
# the database.

here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${TICKETD_BIN:-$repo/build/ticketd}
redis_port=${TICKETD_TEST_REDIS_PORT:-6391}
pg_port=${TICKETD_TEST_PG_PORT:-5441}
token=tk-test-only-admin-token-0123456789abcdef
server=""
ui_on_exit=()

ui_fail() {
    echo "$UI_NAME test: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

ui_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# shellcheck disable=SC2317  # called through the EXIT trap
ui_cleanup() {
    local pid
    for pid in "${ui_on_exit[@]}"; do
        kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
    done
    [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "DROP DATABASE IF EXISTS $UI_DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap ui_cleanup EXIT

port=$(ui_free_port)

ui_start_ticketd() {
    psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE $UI_DB" >/dev/null
    env TICKETD_ENV=development TICKETD_ADMIN_TOKEN=$token TICKETD_LISTEN=127.0.0.1:$port \
        TICKETD_REDIS_URL=redis://127.0.0.1:$redis_port/0 TICKETD_PG_URL=postgresql://postgres@127.0.0.1:$pg_port/$UI_DB \
        TICKETD_LOG_LEVEL=warn "$@" "$bin" >"$out/ticketd.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || ui_fail "ticketd did not start (see $out/ticketd.log)"
}
