# shellcheck shell=bash
# audit.sh — the audit every fault scenario ends with (sourced through lib.sh).
#
# fault_audit checks, for the scenario's event ($EVENT, shard $SHARD, types $TYPES):
#  (a) per type, avail + held + sold == cap, read straight from Redis (HMGET on
#      tk:{s}:inv), at the end and in every sample taken while the sale ran;
#  (b) once every payment has settled (tk:{s}:pay empty) and the writer has caught up
#      (GET /events/stats/ persistence_lag_ms == 0 and tk:{s}:ob empty): every
#      reservation COMPLETED in Redis or reported COMPLETED by GET /transactions/list/
#      is one row in PostgreSQL with status COMPLETED; every transaction reported
#      COMPLETED is a COMPLETED row of transactions; no reservation PostgreSQL calls
#      COMPLETED is anything else in Redis; every payment answered 202 ends as its card
#      says (approved: COMPLETED; declined: ERROR), except, where the scenario allows it,
#      those whose gateway answer died with a killed process; every reservation and transaction of the
#      event in Redis is in PostgreSQL with the same status; PostgreSQL's sold tickets per type equal
#      Redis' sold counter, and its COMPLETED transactions add up to Redis' revenue;
#  (c) no ticket id belongs to two reservations; every reservation holds exactly the
#      tickets it asked for, per type (a 201 the load generator saw); and for every
#      COMPLETED reservation GET /events/reservation/ answers COMPLETED with the same
#      ticket ids as ordered_tickets.
# Failed checks are recorded with fail (lib.sh); details go to $FAULT_WORK/audit/.

# first N lines of a file, on one line, for a failure message
_examples() { head -n "${2:-3}" "$1" | tr '\n' ' '; }

_pay_settled() {
    PAYING=$(rcli zcard "tk:{$SHARD}:pay" 2>/dev/null) || return 1
    [[ "$PAYING" == 0 ]]
}

_writer_caught_up() {
    LAG=$(curl -s -m 2 -H "Authorization: Bearer $FAULT_TOKEN" "$BASE/events/stats/?event_id=$EVENT" |
        jq -r '.live.persistence_lag_ms // "?"' 2>/dev/null) || LAG='?'
    OBLEN=$(rcli xlen "tk:{$SHARD}:ob" 2>/dev/null) || OBLEN='?'
    [[ "$LAG" == 0 && "$OBLEN" == 0 ]]
}

# _compare_statuses DIR: status_mismatch and txn_mismatch, read afresh from both stores
_compare_statuses() {
    local A=$1
    records_json "tk:{$SHARD}:res" | paste - - |
        jq -rR --arg e "$EVENT" 'split("\t") as [$r, $b] | ($b | fromjson) as $x | select($x.e == $e)
            | [$r, (if $x.st == "PAYING" then "PENDING" else $x.st end)] | @tsv' | sort >"$A/redis_status.tsv"
    psql_q "SELECT id, status FROM reservations WHERE event_id = '$EVENT'" | tr '|' '\t' | sort >"$A/pg_status.tsv"
    join -t $'\t' -a 1 -e MISSING -o 0,1.2,2.2 "$A/redis_status.tsv" "$A/pg_status.tsv" |
        awk -F'\t' '$2 != $3 { print $1 " redis=" $2 " pg=" $3 }' >"$A/status_mismatch"
    # transactions of the event's reservations, as tk:{s}:tx has them
    rcli hgetall "tk:{$SHARD}:tx" | paste - - |
        jq -rR 'split("\t") as [$t, $b] | ($b | fromjson) as $x | [$x.r, $t, $x.st] | @tsv' | sort >"$A/redis_txn_all.tsv"
    join -t $'\t' -o 1.2,1.3 "$A/redis_txn_all.tsv" <(cut -f1 "$A/redis_status.tsv") | sort >"$A/redis_txn.tsv"
    psql_q "SELECT t.id, t.status FROM transactions t JOIN reservations r ON r.id = t.reservation_id
            WHERE r.event_id = '$EVENT'" | tr '|' '\t' | sort >"$A/pg_txn.tsv"
    join -t $'\t' -a 1 -e MISSING -o 0,1.2,2.2 "$A/redis_txn.tsv" "$A/pg_txn.tsv" |
        awk -F'\t' '$2 != $3 { print $1 " redis=" $2 " pg=" $3 }' >"$A/txn_mismatch"
}

# _statuses_agree DIR: the writer has caught up and a fresh comparison finds no difference
_statuses_agree() {
    _writer_caught_up || true
    _compare_statuses "$1"
    [[ ! -s "$1/status_mismatch" && ! -s "$1/txn_mismatch" ]]
}

fault_audit() {
    local A=$FAULT_WORK/audit t0 t vals cap avail held sold n
    t0=$(now_ms)
    log "audit: waiting for payments to settle and the writer to catch up"
    if ! ticketd_alive; then
        fail "ticketd (pid ${TICKETD_PID:-none}) is not running at audit time; starting a new one to audit"
        fault_start_ticketd || return 0
    fi
    # A payment whose gateway answer died with a process stays PAYING until the 30 s
    # gateway deadline; nothing can be sold after the pay set is empty and the load ended.
    if ! wait_for "${FAULT_SETTLE_S:-45}" _pay_settled; then
        fail "$PAYING reservations still PAYING ${FAULT_SETTLE_S:-45} s after the sale"
    fi
    if ! wait_for "${FAULT_DRAIN_S:-40}" _writer_caught_up; then
        fail "the writer did not catch up within ${FAULT_DRAIN_S:-40} s: persistence_lag_ms=$LAG, outbox length=$OBLEN"
    fi
    log "audit: settled after $(($(now_ms) - t0)) ms (lag $LAG ms, outbox $OBLEN)"

    # (a) the invariant, now and while the sale ran
    for t in "${TYPES[@]}"; do
        vals=$(rcli hmget "tk:{$SHARD}:inv" "$EVENT:$t:cap" "$EVENT:$t:avail" "$EVENT:$t:held" "$EVENT:$t:sold" | tr '\n' ' ')
        read -r cap avail held sold <<<"$vals"
        printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$cap" "$avail" "$held" "$sold" >>"$A/inventory.tsv"
        check "(a) $t: avail $avail + held $held + sold $sold == cap $cap" \
            test "$((avail + held + sold))" -eq "$cap" -a "$avail" -ge 0 -a "$held" -ge 0 -a "$sold" -ge 0
        declare -g "REDIS_SOLD_$t=$sold"
    done
    n=0
    [[ ! -f "$FAULT_WORK/samples" ]] || n=$(awk -F'\t' '$3 != $4 + $5 + $6 || $4 < 0 || $5 < 0 || $6 < 0' \
        "$FAULT_WORK/samples" | tee "$A/sample_violations.tsv" | wc -l)
    check "(a) invariant held in all $(wc -l <"$FAULT_WORK/samples" 2>/dev/null || echo 0) samples taken during the sale ($n violations)" \
        test "$n" -eq 0

    # Redis' view of the event's reservations: rid, status, VIP tickets, GA tickets, ticket ids
    records_json "tk:{$SHARD}:res" | paste - - |
        jq -rR --arg e "$EVENT" 'split("\t") as [$r, $b] | ($b | fromjson) as $x | select($x.e == $e)
            | [$r, $x.st, ([$x.t[] | select(.[1] == "VIP")] | length), ([$x.t[] | select(.[1] == "GA")] | length),
               ([$x.t[][0]] | sort | join(","))] | @tsv' | sort >"$A/redis_res.tsv"
    awk -F'\t' '$2 == "COMPLETED" { print $1 }' "$A/redis_res.tsv" | sort -u >"$A/redis_completed"
    # what the API told the clients
    load_lines RES | awk -F'\t' '$3 == 201 { print $5 "\t" $6 "\t" $7 }' | sort -u >"$A/asked.tsv"
    load_lines TXN | awk -F'\t' '$5 == "COMPLETED" { print $3 }' | sort -u >"$A/api_completed"
    load_lines TXN | awk -F'\t' '$5 == "COMPLETED" { print $4 }' | sort -u >"$A/api_completed_txn"
    # PostgreSQL's view
    psql_q "SELECT id, status FROM reservations WHERE event_id = '$EVENT'" | tr '|' '\t' | sort >"$A/pg_res.tsv"
    awk -F'\t' '$2 == "COMPLETED" { print $1 }' "$A/pg_res.tsv" | sort -u >"$A/pg_completed"
    psql_q "SELECT t.id FROM transactions t JOIN reservations r ON r.id = t.reservation_id
            WHERE r.event_id = '$EVENT' AND t.status = 'COMPLETED'" | sort -u >"$A/pg_completed_txn"

    # (b) every COMPLETED reservation, from Redis or from the API, is COMPLETED in PostgreSQL
    sort -u "$A/redis_completed" "$A/api_completed" >"$A/completed_any"
    comm -23 "$A/completed_any" "$A/pg_completed" >"$A/missing_in_pg"
    check "(b) all $(wc -l <"$A/completed_any") COMPLETED reservations (Redis $(wc -l <"$A/redis_completed"), API $(wc -l <"$A/api_completed")) are COMPLETED rows in PostgreSQL (missing: $(wc -l <"$A/missing_in_pg") $(_examples "$A/missing_in_pg"))" \
        test ! -s "$A/missing_in_pg"
    n=$(psql_q "SELECT count(*) FROM (SELECT id FROM reservations GROUP BY id HAVING count(*) > 1) d")
    check "(b) no reservation appears twice in PostgreSQL ($n)" test "$n" -eq 0
    comm -23 "$A/api_completed_txn" "$A/pg_completed_txn" >"$A/missing_txn_in_pg"
    check "(b) all $(wc -l <"$A/api_completed_txn") transactions reported COMPLETED are COMPLETED in PostgreSQL (missing: $(wc -l <"$A/missing_txn_in_pg") $(_examples "$A/missing_txn_in_pg"))" \
        test ! -s "$A/missing_txn_in_pg"
    # the reverse: a reservation PostgreSQL (or a client) calls COMPLETED is not something else in Redis
    awk -F'\t' 'NR == FNR { done[$1] = 1; next } ($1 in done) && $2 != "COMPLETED" { print $1 " " $2 }' \
        <(sort -u "$A/pg_completed" "$A/api_completed") "$A/redis_res.tsv" >"$A/completed_but_not_in_redis"
    check "(b) no reservation COMPLETED in PostgreSQL or for a client is anything else in Redis ($(wc -l <"$A/completed_but_not_in_redis") $(_examples "$A/completed_but_not_in_redis"))" \
        test ! -s "$A/completed_but_not_in_redis"
    # every reservation and transaction of the event: the same status in both stores
    # Holds of the last seconds of the sale keep expiring during the audit (FAULT_HOLD_SECONDS),
    # and one that the sweeper ends between the Redis read and the PostgreSQL read differs
    # in that one pair of reads: compare afresh until both stores agree, for up to 10 s. A
    # real divergence does not go away, and fails below.
    wait_for 10 _statuses_agree "$A" || true
    check "(b) every reservation of the event in Redis ($(wc -l <"$A/redis_res.tsv")) is in PostgreSQL with the same status, PAYING as PENDING ($(wc -l <"$A/status_mismatch") differ: $(_examples "$A/status_mismatch"))" \
        test ! -s "$A/status_mismatch"
    check "(b) every transaction in Redis ($(wc -l <"$A/redis_txn.tsv")) is in PostgreSQL with the same status ($(wc -l <"$A/txn_mismatch") differ: $(_examples "$A/txn_mismatch"))" \
        test ! -s "$A/txn_mismatch"
    psql_q "SELECT t.type, count(*) FROM ordered_tickets t JOIN reservations r ON r.id = t.reservation_id
            WHERE r.event_id = '$EVENT' AND r.status = 'COMPLETED' GROUP BY t.type" | tr '|' '\t' >"$A/pg_sold.tsv"
    for t in "${TYPES[@]}"; do
        n=$(awk -F'\t' -v t="$t" '$1 == t { print $2 }' "$A/pg_sold.tsv")
        n=${n:-0}
        local redis_sold_var=REDIS_SOLD_$t
        check "(b) $t: PostgreSQL sold $n tickets, Redis sold ${!redis_sold_var}" test "$n" -eq "${!redis_sold_var}"
    done
    local pg_revenue redis_revenue
    pg_revenue=$(psql_q "SELECT coalesce((sum(t.amount) * 100)::bigint, 0) FROM transactions t
            JOIN reservations r ON r.id = t.reservation_id WHERE r.event_id = '$EVENT' AND t.status = 'COMPLETED'")
    redis_revenue=$(rcli hget "tk:{$SHARD}:inv" "$EVENT:revenue")
    check "(b) revenue: PostgreSQL $pg_revenue, Redis $redis_revenue (minor units)" test "$pg_revenue" -eq "$redis_revenue"

    # (b) payments: every transaction a client was given (202) ends as its card says —
    # approved cards COMPLETED, the declined test card ERROR. Only a payment whose gateway
    # answer died with its process may end as "Payment gateway timed out": those started
    # (transactions.date) within FAULT_PAYMENT_LOSS_WINDOW="from_ms to_ms", if the scenario sets one.
    load_lines PAY | awk -F'\t' '$3 == 202 && $6 != "-" { print $6 "\t" $7 }' | sort -u -t $'\t' -k1,1 >"$A/txn_202.tsv"
    psql_q "SELECT t.id, t.status, coalesce(t.error_type, ''), (extract(epoch FROM t.date) * 1000)::bigint
            FROM transactions t JOIN reservations r ON r.id = t.reservation_id WHERE r.event_id = '$EVENT'" |
        tr '|' '\t' | sort >"$A/pg_txn_outcome.tsv"
    local window=${FAULT_PAYMENT_LOSS_WINDOW:-0 0}
    join -t $'\t' -a 1 -e MISSING -o 0,1.2,2.2,2.3,2.4 "$A/txn_202.tsv" "$A/pg_txn_outcome.tsv" |
        awk -F'\t' -v from="${window% *}" -v to="${window#* }" '
            $2 == "4000000000000002" && $3 == "ERROR" && $4 == "Your card has been declined" { next }
            $2 != "4000000000000002" && $3 == "COMPLETED" { next }
            $3 == "ERROR" && $4 == "Payment gateway timed out" && $5 >= from && $5 <= to { print $1 >"/dev/stderr"; next }
            { print $1 " card=" $2 " pg=" $3 ":" $4 }' >"$A/payment_outcome_wrong" 2>"$A/payment_lost_in_window"
    [[ ! -s "$A/payment_lost_in_window" ]] ||
        note "$(wc -l <"$A/payment_lost_in_window") payments in flight at the fault ended as 'Payment gateway timed out'"
    check "(b) all $(wc -l <"$A/txn_202.tsv") payments answered 202 ended as their card says ($(wc -l <"$A/payment_outcome_wrong") did not: $(_examples "$A/payment_outcome_wrong" 2))" \
        test ! -s "$A/payment_outcome_wrong"

    # (c) tickets
    n=$(psql_q "SELECT count(*) FROM (SELECT id FROM ordered_tickets GROUP BY id HAVING count(DISTINCT reservation_id) > 1) d")
    check "(c) no ticket id is in two reservations ($n)" test "$n" -eq 0
    psql_q "SELECT reservation_id, count(*) FILTER (WHERE type = 'VIP'), count(*) FILTER (WHERE type = 'GA'),
                   string_agg(id::text, ',' ORDER BY id)
            FROM ordered_tickets WHERE event_id = '$EVENT' GROUP BY reservation_id" | tr '|' '\t' | sort >"$A/pg_tickets.tsv"
    # PostgreSQL's tickets against what each 201 asked for (vip, ga)
    join -t $'\t' "$A/asked.tsv" <(cut -f1-3 "$A/pg_tickets.tsv") |
        awk -F'\t' '$4 > $2 || $5 > $3 { print "more:" $1 } $4 < $2 || $5 < $3 { print "fewer:" $1 }' >"$A/wrong_counts"
    check "(c) every persisted reservation holds exactly the tickets it asked for, per type ($(wc -l <"$A/wrong_counts") wrong: $(_examples "$A/wrong_counts"))" \
        test ! -s "$A/wrong_counts"
    # reservations of the event in PostgreSQL with no tickets at all
    comm -23 <(cut -f1 "$A/pg_res.tsv") <(cut -f1 "$A/pg_tickets.tsv") >"$A/without_tickets"
    check "(c) every reservation in PostgreSQL has tickets ($(wc -l <"$A/without_tickets") without)" test ! -s "$A/without_tickets"
    # reservations nobody saw a 201 for (their answer died with a process): tickets as Redis has them
    comm -23 <(cut -f1 "$A/pg_res.tsv") <(cut -f1 "$A/asked.tsv") >"$A/unacknowledged"
    [[ ! -s "$A/unacknowledged" ]] || note "$(wc -l <"$A/unacknowledged") reservations in PostgreSQL were never acknowledged to a client (answers lost in the fault)"
    join -t $'\t' <(cut -f1,5 "$A/redis_res.tsv") <(cut -f1,4 "$A/pg_tickets.tsv") | awk -F'\t' '$2 != $3 { print $1 }' \
        >"$A/ticket_ids_differ"
    check "(c) ticket ids in PostgreSQL equal those in Redis for every reservation in both ($(wc -l <"$A/ticket_ids_differ") differ)" \
        test ! -s "$A/ticket_ids_differ"
    # the API's documents of the COMPLETED reservations
    # (one curl, one kept-alive connection, one document a line)
    sed "s|.*|url = \"$BASE/events/reservation/?reservation_id=&\"|" "$A/pg_completed" >"$A/api_docs.curl"
    if [[ -s "$A/api_docs.curl" ]]; then
        curl -s -m 60 -K "$A/api_docs.curl" -w '\n' |
            jq -r 'select(.reservation != null) | [.reservation.id, .reservation.status, ([.tickets[].id] | sort | join(","))] | @tsv' |
            sort >"$A/api_docs.tsv" || true
    else
        : >"$A/api_docs.tsv"
    fi
    join -t $'\t' -a 1 "$A/pg_completed" "$A/api_docs.tsv" |
        join -t $'\t' -a 1 - <(cut -f1,4 "$A/pg_tickets.tsv") |
        awk -F'\t' '$2 != "COMPLETED" || $3 != $4 { print $1 " api=" $2 }' >"$A/api_mismatch"
    check "(c) GET /events/reservation/ answers COMPLETED with PostgreSQL's ticket ids for all $(wc -l <"$A/pg_completed") COMPLETED reservations ($(wc -l <"$A/api_mismatch") differ: $(_examples "$A/api_mismatch"))" \
        test ! -s "$A/api_mismatch"

    local stats
    stats=$(curl -s -m 2 -H "Authorization: Bearer $FAULT_TOKEN" "$BASE/events/stats/?event_id=$EVENT" |
        jq -c '.live | {capacity, available, held, sold, cancelled, expired, revenue}' 2>/dev/null || echo '?')
    log "audit done in $(($(now_ms) - t0)) ms: holds acknowledged $(wc -l <"$A/asked.tsv"), reservations in PostgreSQL $(wc -l <"$A/pg_res.tsv"), COMPLETED $(wc -l <"$A/pg_completed"); live $stats"
}
