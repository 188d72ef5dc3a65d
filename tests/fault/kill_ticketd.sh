#!/usr/bin/env bash
# kill_ticketd.sh — fault scenario 1: ticketd dies (SIGKILL) in the middle of a flash
# sale with payments, is restarted on the same port, the sale finishes, then the common
# audit (audit.sh). What the README ("Durability: what survives a crash") promises and
# this checks: nothing acknowledged is lost (all state lives in the stores); requests in
# flight get no answer and clients retry; outbox entries the dead writer had read are
# claimed by the new one; a payment whose gateway answer died with the process stays
# PAYING until the 30 s gateway deadline, then fails as "Payment gateway timed out".
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
fault_init kill_ticketd 11
fault_start_ticketd
fault_create_event 100 400
fault_load_start 20
sleep 7

before_kill=$(load_lines RES | awk -F'\t' '$3 == 201' | wc -l)
# kill while payments are in flight: wait (bounded) for a reservation to be PAYING
paying() { (($(rcli zcard "tk:{$SHARD}:pay") > 0)); }
wait_for 3 paying || true
paying_at_kill=$(rcli zcard "tk:{$SHARD}:pay")
kill_ms=$(now_ms)
fault_kill_ticketd
log "killed with $before_kill holds acknowledged so far and $paying_at_kill reservations PAYING"
sleep 0.5
fault_start_ticketd
restart_ms=$(now_ms)
log "ticketd back after $((restart_ms - kill_ms)) ms"

# payments whose gateway answer died with the process may time out: those started just
# before the kill. The window ends when the new process is up, not at kill_ms: kill_ms is
# read before the SIGKILL lands, and the old process may still start a payment in between
# (it happened); nothing starts one while no process runs, and the new one's must not time out.
FAULT_PAYMENT_LOSS_WINDOW="$((kill_ms - 2000)) $restart_ms"
fault_load_wait
after_restart=$(load_lines RES | awk -F'\t' -v t="$restart_ms" '$3 == 201 && $2 > t' | wc -l)
lost=$(cat "$FAULT_WORK"/load/*.log | awk -F'\t' '$3 == "000"' | wc -l)
busy=$(cat "$FAULT_WORK"/load/*.log | awk -F'\t' '($1 == "RES" || $1 == "PAY") && $10 == "Request_in_progress"' | wc -l)
log "after the restart: $after_restart holds acknowledged; $lost requests got no answer; $busy retries answered 409 Request in progress"
[[ "$busy" == 0 ]] || note "$busy retries with the Idempotency-Key of a request cut off by the kill were refused with 409 'Request in progress' (the claim outlives the process for TK_IDEM_CLAIM_MS = 60 s)"
check "the sale went on after the restart ($after_restart holds acknowledged)" test "$after_restart" -gt 0
check "the sale was under way before the kill ($before_kill holds acknowledged)" test "$before_kill" -gt 0

fault_audit

# payments cut off by the kill: they must end as "Payment gateway timed out", not hang
timed_out=$(psql_q "SELECT count(*) FROM transactions t JOIN reservations r ON r.id = t.reservation_id
                    WHERE r.event_id = '$EVENT' AND t.error_type = 'Payment gateway timed out'")
pending_txn=$(psql_q "SELECT count(*) FROM transactions t JOIN reservations r ON r.id = t.reservation_id
                      WHERE r.event_id = '$EVENT' AND t.status = 'PENDING'")
log "$timed_out payments ended as 'Payment gateway timed out'; $pending_txn transactions still PENDING in PostgreSQL"
check "no transaction is left PENDING in PostgreSQL ($pending_txn)" test "$pending_txn" -eq 0
claimed=$(grep -c 'claimed .* abandoned outbox entries' "$FAULT_WORK/ticketd.log" || true)
log "the new writer logged $claimed claims of abandoned outbox entries"
fault_finish
