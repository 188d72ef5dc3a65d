#!/usr/bin/env bash
# kill_redis.sh — fault scenario 2: redis-server dies (SIGKILL) in the middle of a flash
# sale, with holds and payments in flight, and is restarted from its append-only file
# (scripts/services.sh start-redis). ticketd is NOT restarted: it must reconnect by
# itself (checked first; if it does not, that is a failure, and only then is it
# restarted so the audit can run). Then the README's claim is checked — with
# appendfsync always, restarted from its AOF Redis has every write it acknowledged:
# every reservation id answered 201 still exists (in Redis, and GET
# /events/reservation/ answers 200), every transaction reported COMPLETED still reads
# COMPLETED; and every payment answered 202 ends as its card says (audit.sh) — a
# gateway answer that lands while Redis is still loading must not be lost. Then the
# rest of the common audit.
#
# Stores: scripts/services.sh (profile test) on TICKETD_REDIS_PORT / TICKETD_PG_PORT,
# else TICKETD_TEST_REDIS_PORT / TICKETD_TEST_PG_PORT; ticketd from TICKETD_BIN.
# Loopback only; about 60 s; everything it starts is stopped on exit (lib.sh).
# shellcheck disable=SC2317  # small functions here are called through wait_for
set -euo pipefail
# shellcheck source=tests/fault/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# payments long enough in flight that the kill catches some
FAULT_PAYMENT_LATENCY_MS=${FAULT_PAYMENT_LATENCY_MS:-200}
fault_init kill_redis 12
fsync=$(rcli config get appendfsync | sed -n 2p)
aof=$(rcli config get appendonly | sed -n 2p)
check "Redis runs with appendonly yes ($aof) and appendfsync always ($fsync)" test "$aof:$fsync" == yes:always
# A production Redis holds more than one sale: give this one ~500k small keys (in the
# scenario's own database, flushed at the end) so that reloading the AOF takes a
# noticeable time, during which Redis accepts connections and answers LOADING.
ballast=${FAULT_REDIS_BALLAST:-500000}
FAULT_COMPACT_AOF=1
awk -v n="$ballast" 'BEGIN { for (i = 0; i < n; i++) { k = "fault:ballast:" i
    printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$32\r\n0123456789abcdef0123456789abcdef\r\n", length(k), k } }' |
    rcli --pipe >/dev/null
log "ballast: $(rcli dbsize) keys in db $REDIS_DB"
fault_start_ticketd
fault_create_event 120 500
fault_load_start 24
sleep 7

paying() { (($(rcli zcard "tk:{$SHARD}:pay") > 0)); }
wait_for 3 paying || true
redis_pid=$(rcli info server | tr -d '\r' | awk -F: '$1 == "process_id" { print $2 }')
before_kill=$(load_lines RES | awk -F'\t' '$3 == 201' | wc -l)
paying_at_kill=$(rcli zcard "tk:{$SHARD}:pay")
kill_ms=$(now_ms)
kill -9 "$redis_pid"
dead() { [[ "$(ps -o stat= -p "$redis_pid" 2>/dev/null || echo Z)" == Z* ]]; } # a zombie is dead too
wait_for 5 dead || fail "redis-server $redis_pid still alive after SIGKILL"
log "redis-server pid $redis_pid killed with SIGKILL ($before_kill holds acknowledged so far, $paying_at_kill reservations PAYING)"
sleep 1
check "ticketd survives losing Redis" ticketd_alive
services start-redis >/dev/null
up_ms=$(now_ms)
log "redis restarted from its AOF after $((up_ms - kill_ms)) ms (pid $(rcli info server | tr -d '\r' | awk -F: '$1 == "process_id" { print $2 }'); $(grep -o 'DB loaded from append only file: [0-9.]* seconds' "$FAULT_DATA_DIR/redis/redis.log" | tail -n 1))"

# Does ticketd reconnect by itself? A hold acknowledged after the restart says so.
acked_after_restart() { (($(load_lines RES | awk -F'\t' -v t="$up_ms" '$3 == 201 && $2 > t' | wc -l) > 0)); }
if wait_for 15 acked_after_restart; then
    log "ticketd sells again $(($(now_ms) - up_ms)) ms after Redis came back, without a restart"
    wait_for 5 healthy || fail "/healthz does not answer 200 5 s after ticketd sells again"
else
    fail "ticketd did not sell again within 15 s of Redis' restart (no reconnect); restarting it to audit"
    grep -iE 'redis|writer|catalog' "$FAULT_WORK/ticketd.log" | tail -n 10 | sed 's/^/  | /'
    kill -TERM "$TICKETD_PID"
    wait "$TICKETD_PID" 2>/dev/null || true
    fault_start_ticketd
fi
fault_load_wait

# The durability claim. Records forgotten after their 60 s grace would read from
# PostgreSQL and hide a loss, but none is that old yet: every id must be in Redis itself.
A=$FAULT_WORK/audit
load_lines RES | awk -F'\t' '$3 == 201 { print $5 }' | sort -u >"$A/acked_rids"
rcli hkeys "tk:{$SHARD}:res" | sort -u >"$A/redis_rids"
comm -23 "$A/acked_rids" "$A/redis_rids" >"$A/lost_rids"
check "all $(wc -l <"$A/acked_rids") reservations answered 201 are in Redis after its restart (lost: $(wc -l <"$A/lost_rids") $(_examples "$A/lost_rids"))" \
    test ! -s "$A/lost_rids"
sed "s|.*|url = \"$BASE/events/reservation/?reservation_id=&\"\noutput = \"/dev/null\"|" "$A/acked_rids" >"$A/acked.curl"
curl -s -m 60 -K "$A/acked.curl" -w '%{http_code}\n' | sort | uniq -c >"$A/acked_get_codes"
n=$(awk '$2 != 200 { n += $1 } END { print n + 0 }' "$A/acked_get_codes")
check "GET /events/reservation/ answers 200 for every reservation answered 201 ($n did not: $(tr '\n' ' ' <"$A/acked_get_codes"))" \
    test "$n" -eq 0
load_lines TXN | awk -F'\t' '$5 == "COMPLETED" { print $4 }' | sort -u >"$A/completed_txns"
sed "s|.*|url = \"$BASE/transactions/list/?transaction_id=&\"|" "$A/completed_txns" >"$A/txns.curl"
n=0
if [[ -s "$A/txns.curl" ]]; then
    n=$(curl -s -m 60 -K "$A/txns.curl" -w '\n' | jq -r .status | grep -vc '^COMPLETED$' || true)
fi
check "every transaction reported COMPLETED ($(wc -l <"$A/completed_txns")) still reads COMPLETED ($n do not)" test "$n" -eq 0
log "holds answered during the outage: $(load_lines RES | awk -F'\t' -v k="$kill_ms" -v u="$up_ms" '$2 >= k && $2 <= u { print $3 }' | sort | uniq -c | tr -s ' \n' ' ')"

fault_audit
fault_finish
