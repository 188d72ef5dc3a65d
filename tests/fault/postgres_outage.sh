#!/usr/bin/env bash
# postgres_outage.sh — fault scenario 3: PostgreSQL is stopped for 30 s in the middle of
# a flash sale (scripts/services.sh stop-postgres / start-postgres). What the README
# ("Durability: what survives a crash") promises and this checks: sales go on — holds,
# payments and cancellations keep working in Redis (201s are counted during the
# outage); the outbox grows and persistence_lag_ms rises; when PostgreSQL returns the
# backlog drains (timed) with no row lost or written twice, acknowledged in Redis with
# one XACK per batch and shard (counted in INFO commandstats); then the common audit
# (audit.sh).
#
# Stores: scripts/services.sh (profile test) on TICKETD_REDIS_PORT / TICKETD_PG_PORT,
# else TICKETD_TEST_REDIS_PORT / TICKETD_TEST_PG_PORT; ticketd from TICKETD_BIN.
# Loopback only; about 55 s; everything it starts is stopped on exit (lib.sh).
# shellcheck disable=SC2317  # small functions here are called through wait_for
set -euo pipefail
# shellcheck source=tests/fault/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUTAGE_S=${FAULT_OUTAGE_S:-30}
FAULT_WORKERS=${FAULT_WORKERS:-4}
fault_init postgres_outage 13
fault_start_ticketd
fault_create_event 300 1500
fault_load_start $((OUTAGE_S + 14))
sleep 6

down_ms=$(now_ms)
services stop-postgres >/dev/null
check "PostgreSQL is down" wait_for 5 eval '! pg_up'
log "PostgreSQL stopped (took $(($(now_ms) - down_ms)) ms); the sale goes on for ${OUTAGE_S} s"
sleep 3
health=$(curl -s -m 2 "$BASE/healthz" || true)
log "/healthz during the outage: $health"
max_lag=0 max_ob=0
sample_backlog() {
    local lag ob
    lag=$(curl -s -m 2 -H "Authorization: Bearer $FAULT_TOKEN" "$BASE/events/stats/?event_id=$EVENT" |
        jq -r '.live.persistence_lag_ms // 0' 2>/dev/null || echo 0)
    ob=$(rcli xlen "tk:{$SHARD}:ob" 2>/dev/null || echo 0)
    ((lag <= max_lag)) || max_lag=$lag
    ((ob <= max_ob)) || max_ob=$ob
}
outage_end=$((down_ms + OUTAGE_S * 1000))
while (($(now_ms) < outage_end)); do
    sample_backlog
    sleep 1
done
check "ticketd survives the outage" ticketd_alive
# How the writer acknowledges the backlog: one tk_persisted (one XACK) per shard and
# batch is the design (engine/writer.c acknowledge()); Redis counts the XACKs.
xack_calls() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info commandstats | tr -d '\r' |
    awk -F'[:=,]' '$1 == "cmdstat_xack" { print $3 } END { if (NR == 0) print 0 }' | tail -n 1; }
batches() { curl -s -m 2 "$BASE/metrics" | awk '$1 == "ticketd_writer_batches_total" { print $2 }'; }
xack0=$(xack_calls) batches0=$(batches)
up_ms=$(now_ms)
services start-postgres >/dev/null
log "PostgreSQL started again after $(((up_ms - down_ms) / 1000)) s down (backlog: outbox $max_ob entries, lag up to $max_lag ms)"

in_outage() { awk -F'\t' -v d="$down_ms" -v u="$up_ms" -v k="$1" -v c="$2" '$1 == k && $2 > d && $2 < u && $3 == c' \
    "$FAULT_WORK"/load/*.log | wc -l; }
holds=$(in_outage RES 201) payments=$(in_outage PAY 202) cancels=$(in_outage CAN 200)
completed=$(awk -F'\t' -v d="$down_ms" -v u="$up_ms" '$1 == "TXN" && $2 > d && $2 < u && $5 == "COMPLETED"' "$FAULT_WORK"/load/*.log | wc -l)
refused=$(awk -F'\t' -v d="$down_ms" -v u="$up_ms" '$2 > d && $2 < u && ($3 ~ /^5[0-9][0-9]$/ || $3 == "000")' "$FAULT_WORK"/load/*.log | wc -l)
log "during the outage: $holds holds (201), $payments payments started (202), $completed completed, $cancels cancellations, $refused answers 5xx or none"
check "sales went on without PostgreSQL ($holds holds acknowledged during the outage)" test "$holds" -gt 0
check "payments completed without PostgreSQL ($completed)" test "$completed" -gt 0
check "no request failed because PostgreSQL was away ($refused answered 5xx or not at all)" test "$refused" -eq 0
check "the outbox grew while PostgreSQL was away (up to $max_ob entries)" test "$max_ob" -gt 0

# the backlog drains while the sale goes on
drained() { _writer_caught_up || (($(rcli xlen "tk:{$SHARD}:ob") < 50)); }
if wait_for 30 drained; then
    log "backlog drained (outbox < 50 entries) $(($(now_ms) - up_ms)) ms after PostgreSQL came back"
else
    fail "the backlog did not drain within 30 s of PostgreSQL's return (outbox $(rcli xlen "tk:{$SHARD}:ob"))"
fi
grep -E 'writer' "$FAULT_WORK/ticketd.log" | head -n 3 | sed 's/^/  | /'
fault_load_wait
fault_audit
# every batch since PostgreSQL came back, the backlog's included, is acknowledged by now
xacks=$(($(xack_calls) - xack0)) nbatches=$(($(batches) - batches0))
log "since PostgreSQL came back the writer committed $nbatches batches and Redis ran $xacks XACKs for them"
check "the writer acknowledged with one XACK per batch and shard ($xacks XACKs for $nbatches batches; engine/writer.c acknowledge())" \
    test "$xacks" -le $((2 * nbatches + 20))
fault_finish
