#!/usr/bin/env bash
# redis_unreachable.sh — fault scenario 4: Redis is stopped (scripts/services.sh
# stop-redis) in the middle of a flash sale and started again 10 s later. While it is
# away ticketd must answer reservation requests promptly with 503 and a Retry-After
# header — every request (the load generator's and the probes') answered within 2 s,
# none hanging, the process alive — and GET /events/event/ still answers 200 from
# memory. Once Redis is back, reservations must succeed again within a few seconds
# without restarting ticketd. Then the common audit (audit.sh).
#
# Stores: scripts/services.sh (profile test) on TICKETD_REDIS_PORT / TICKETD_PG_PORT,
# else TICKETD_TEST_REDIS_PORT / TICKETD_TEST_PG_PORT; ticketd from TICKETD_BIN.
# Loopback only; about 35 s; everything it starts is stopped on exit (lib.sh).
# shellcheck disable=SC2317  # small functions here are called through wait_for
set -euo pipefail
# shellcheck source=tests/fault/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUTAGE_S=${FAULT_OUTAGE_S:-10}
FAULT_WORKERS=${FAULT_WORKERS:-4}
fault_init redis_unreachable 14
fault_start_ticketd
fault_create_event 400 1500  # not sold out: a sold-out type is refused from memory (409), not 503
fault_load_start $((OUTAGE_S + 16))
sleep 6
some_rid=$(load_lines RES | awk -F'\t' '$3 == 201 { print $5; exit }')
some_txn=$(load_lines PAY | awk -F'\t' '$3 == 202 { print $6; exit }')

down_ms=$(now_ms)
services stop-redis >/dev/null
stopped_ms=$(now_ms)
log "Redis stopped (took $((stopped_ms - down_ms)) ms)"
P=$FAULT_WORK/probes
mkdir -p "$P"
# probe KIND METHOD PATH [BODY]: one request, one line: kind code latency retry_after
probe() {
    _req "$2" "$3" "${4:-}"
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$RC" "$LAT" "$RRETRY" "$(now_ms)" >>"$P/$1.$BASHPID"
}
reserve_body="{\"event_id\": \"$EVENT\", \"tickets\": [{\"type\": \"GA\", \"amount\": 1}]}"
for i in $(seq 1 20); do
    probe reserve POST /events/reservation/ "$reserve_body"
done
probes=()
for i in $(seq 1 20); do
    probe reserve_parallel POST /events/reservation/ "$reserve_body" &
    probes+=($!)
done
wait "${probes[@]}" || true
for i in $(seq 1 5); do
    probe list GET "/events/event/?page_size=100"
    probe detail POST /events/event/ "{\"event_id\": \"$EVENT\"}"
    probe health GET /healthz
    probe pay PUT /events/reservation/ "{\"reservation_id\": \"$some_rid\"}"
    probe read GET "/events/reservation/?reservation_id=$some_rid"
    probe txn GET "/transactions/list/?transaction_id=$some_txn"
done
_req GET "/events/event/?page_size=100"
check "GET /events/event/ lists the event while Redis is away" grep -q "$EVENT" <<<"$RBODY"
cat "$P"/* >"$P/all.tsv"
summary() { awk -F'\t' -v k="$1" '$1 ~ "^" k { print $2 }' "$P/all.tsv" | sort | uniq -c | tr -s ' \n' ' '; }
for k in reserve list detail health pay read txn; do
    log "probes $k: $(summary "$k")"
done
n=$(awk -F'\t' '$1 ~ /^reserve/ && !($2 == 503 && $4 == 1)' "$P/all.tsv" | wc -l)
check "all 40 reservation probes answered 503 with Retry-After ($n did not)" test "$n" -eq 0
n=$(awk -F'\t' '$1 == "list" && $2 != 200' "$P/all.tsv" | wc -l)
check "GET /events/event/ answered 200 from memory ($n did not)" test "$n" -eq 0
n=$(awk -F'\t' '$1 ~ /^(detail|health|pay|read|txn)$/ && !($2 == 503 && $4 == 1)' "$P/all.tsv" | wc -l)
check "event detail, /healthz, payment, reservation and transaction reads answered 503 with Retry-After ($n did not)" test "$n" -eq 0
slowest=$(sort -t $'\t' -k3,3gr "$P/all.tsv" | head -n 1 | cut -f1-3 | tr '\t' ' ')
n=$(awk -F'\t' '$2 == "000" || $3 >= 2' "$P/all.tsv" | wc -l)
check "every probe answered within 2 s ($n did not; slowest: $slowest)" test "$n" -eq 0
check "ticketd is alive with Redis away" ticketd_alive

outage_end=$((down_ms + OUTAGE_S * 1000))
while (($(now_ms) < outage_end)); do sleep 0.2; done
up_ms=$(now_ms)
# the load generator's requests answered while Redis was away (from shortly after the stop)
awk -F'\t' -v d="$stopped_ms" -v u="$up_ms" '$1 != "TXN" && $2 > d + 100 && $2 < u' "$FAULT_WORK"/load/*.log >"$P/load_in_outage.tsv"
n=$(awk -F'\t' '$3 == "000" || $4 >= 2' "$P/load_in_outage.tsv" | wc -l)
check "all $(wc -l <"$P/load_in_outage.tsv") load requests during the outage answered within 2 s ($n did not)" test "$n" -eq 0
n=$(awk -F'\t' '$1 == "RES" && !($3 == 503 && $9 == 1)' "$P/load_in_outage.tsv" | wc -l)
check "all $(awk -F'\t' '$1 == "RES"' "$P/load_in_outage.tsv" | wc -l) load reservation requests during the outage answered 503 with Retry-After ($n did not)" test "$n" -eq 0

services start-redis >/dev/null
restarted_ms=$(now_ms)
log "Redis started again after $(((restarted_ms - down_ms) / 1000)) s away"
reserved() {
    local rid=-
    _req POST /events/reservation/ "$reserve_body"
    [[ "$RC" != 201 || ! "$RBODY" =~ \"reservation_id\":\"([0-9a-f-]{36})\" ]] || rid=${BASH_REMATCH[1]}
    # logged like the load generator's holds, for the audit
    printf 'RES\t%s\t%s\t%s\t%s\t0\t1\t1\t%s\t%s\n' "$(now_ms)" "$RC" "$LAT" "$rid" "$RRETRY" "$RERR" >>"$FAULT_WORK/load/probe.log"
    [[ "$RC" == 201 ]]
}
if wait_for 10 reserved; then
    log "a reservation succeeded again $(($(now_ms) - restarted_ms)) ms after Redis came back (same ticketd, pid $TICKETD_PID)"
else
    fail "no reservation succeeded within 10 s of Redis' return (last answer $RC)"
fi
check "ticketd was not restarted" ticketd_alive
fault_load_wait
after=$(load_lines RES | awk -F'\t' -v t="$restarted_ms" '$3 == 201 && $2 > t' | wc -l)
check "the sale went on after Redis came back ($after holds acknowledged)" test "$after" -gt 0
fault_audit
fault_finish
