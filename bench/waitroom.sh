# shellcheck shell=bash
# waitroom.sh — the waiting-room scenario of bench/run (sourced after lib.sh).
#
# An event goes on sale behind a waiting room that opens now, admitting RATE buyers a
# minute. A crowd of CROWD buyers joins (POST /events/queue/, wrk in rounds of 2 s until
# that many queue ids are in hand), then keeps polling (GET /events/queue/?queue_id=...,
# every wrk thread cycling through all the ids) for DURATION with CONNECTIONS
# connections. In the same run, right before: GET /healthz with the same connections and
# duration, the reference; right after: GET /healthz through the poll script's own
# machinery (a request() and a response() that reads the body), the control that shows
# what the script costs the load generator. A poll needs no Redis (ticketd answers it from
# its view of the room); healthz does a PING.
#
# Figures, in $WORK/waitroom.json:
#   poll_over_healthz             polls/s over the healthz reference (target >= 0.8)
#   admission.figures_per_minute  the room's "admitted" figure (GET /admin/events/E/waiting-room)
#                                 read before and after the polls, per minute of wall clock
#   admission.polls_per_minute    the admission line as the pollers saw it: the highest
#                                 ticket answered "admitted", per minute (bench/wrk/waitroom_poll.lua;
#                                 the ids are polled in ticket order for that)
#   both over the configured rate: 1.0 when the rate holds under the crowd's load.
# Checks (correctness only): the room's PUT answers 200, the crowd joined, every poll
# answered 200, and the crowd was still waiting at the end (else the rate is not measured).
# waitroom_report adds the scenario, its ratio and its targets to bench/report's JSON and
# prints them.

# wr_admin EVENT [BODY]: the event's waiting room (PUT BODY when given, else GET); prints
# the answer, fails unless 200.
wr_admin() {
    local method=GET args=()
    [[ $# -gt 1 ]] && method=PUT args=(-H 'Content-Type: application/json' -d "$2")
    local status
    status=$(curl -s -o "$WORK/waitroom.admin.json" -w '%{http_code}' -X "$method" "${args[@]}" \
        -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE_URL/admin/events/$1/waiting-room")
    cat "$WORK/waitroom.admin.json"
    [[ "$status" == 200 ]]
}

now_ms() { date +%s%3N; }

scenario_waitroom() { # CROWD DURATION CONNECTIONS RATE
    local crowd=$1 dur=$2 conns=$3 rate=$4 e opens room have=0 round
    e=$(create_event "Stadium Tour (waiting room)" GA:89.00:100000)
    opens=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    log "waiting room: $crowd buyers join a room admitting $rate a minute, then poll for ${dur}s with $conns connections"
    room=$(wr_admin "$e" "{\"enabled\":true,\"opens_at\":\"$opens\",\"admit_per_minute\":$rate,\"admission_seconds\":3600}") ||
        { check "waiting room: PUT /admin/events/E/waiting-room answers 200 ($room)" false; return; }
    check "waiting room: PUT /admin/events/E/waiting-room answers 200" true

    # The crowd: a wrk thread stops at its quota, so join in short rounds until enough ids.
    rm -rf "$WORK/waitroom.d" && mkdir -p "$WORK/waitroom.d"
    for ((round = 1; round <= 20 && have < crowd; round++)); do
        run_wrk waitroom_join waitroom_join.lua 2 64 2s BENCH_EVENT="$e" BENCH_OUT_DIR="$WORK/waitroom.d" \
            BENCH_JOIN_QUOTA=$(((crowd - have + 1) / 2))
        have=$(cat "$WORK"/waitroom.d/join-*.txt | wc -l)
    done
    # in ticket order ("<event>.<ticket>.<joined>.<signature>"): each poller then sweeps the
    # queue from its head, and the highest ticket it sees admitted in a sweep is the line
    # at that instant (see bench/wrk/waitroom_poll.lua)
    cat "$WORK"/waitroom.d/join-*.txt | head -n "$crowd" | sort -t. -k2,2n >"$WORK/waitroom.ids"
    have=$(wc -l <"$WORK/waitroom.ids")
    check "waiting room: the crowd joined ($have of $crowd queue ids)" eq "$have" "$crowd"
    ((have > 0)) || return 0

    scenario_healthz healthz_waitroom "${dur}s" "$conns"
    local before after t0 t1
    t0=$(now_ms)
    before=$(wr_admin "$e") || before='{}'
    run_wrk waitroom_poll waitroom_poll.lua 2 "$conns" "${dur}s" BENCH_IDS="$WORK/waitroom.ids"
    t1=$(now_ms) # taken as t0 was, just before the GET, so the time curl takes cancels out
    after=$(wr_admin "$e") || after='{}'
    run_wrk waitroom_control waitroom_poll.lua 2 "$conns" "${dur}s" BENCH_IDS="$WORK/waitroom.ids" BENCH_WR_MODE=healthz
    check "waiting room: every poll answered 200" status_only waitroom_poll 200
    check "waiting room: control (healthz through the poll script) answered 200" status_only waitroom_control 200
    check "waiting room: the crowd was still waiting at the end ($(jq -c '{waiting, admitted}' <<<"$after"))" \
        jq -e '.waiting > 0' <<<"$after"

    local seen
    seen=$(sed -n 's/^BENCH_WAITROOM //p' "$WORK/waitroom_poll.wrk.txt")
    [[ -n "$seen" ]] || seen='{"threads":[]}'
    jq -n --argjson crowd "$crowd" --argjson rate "$rate" --argjson conns "$conns" --arg dur "$dur" \
        --argjson before "$before" --argjson after "$after" --argjson t0 "$t0" --argjson t1 "$t1" \
        --argjson seen "$seen" --slurpfile poll "$WORK/waitroom_poll.json" \
        --slurpfile hz "$WORK/healthz_waitroom.json" --slurpfile ctl "$WORK/waitroom_control.json" '
        def r(a; b): if (a | type) == "number" and (b | type) == "number" and b > 0 then (a / b * 1000 | round) / 1000 else null end;
        ($seen.threads | map(select(.last_us > .first_us)
            | (.last_ticket - .first_ticket) / ((.last_us - .first_us) / 60000000))) as $per_thread |
        (if ($before.admitted | type) == "number" and ($after.admitted | type) == "number"
         then ($after.admitted - $before.admitted) / (($t1 - $t0) / 60000) else null end) as $fig |
        (if ($per_thread | length) > 0 then ($per_thread | add / length) else null end) as $polls |
        {crowd: $crowd, connections: $conns, duration_s: ($dur | tonumber),
         poll: $poll[0], healthz: $hz[0], control_healthz_via_poll_script: $ctl[0],
         poll_over_healthz: r($poll[0].rps; $hz[0].rps),
         poll_over_control: r($poll[0].rps; $ctl[0].rps),
         admission: {configured_per_minute: $rate,
                     figures_per_minute: (if $fig == null then null else ($fig * 10 | round) / 10 end),
                     polls_per_minute: (if $polls == null then null else ($polls * 10 | round) / 10 end),
                     figures_over_configured: r($fig; $rate), polls_over_configured: r($polls; $rate),
                     before: $before, after: $after, window_ms: ($t1 - $t0), pollers: $seen.threads}}' \
        >"$WORK/waitroom.json"
}

# waitroom_report OUT_JSON: adds the scenario (.scenarios.waiting_room), its ratio
# (.ratios.queue_poll_over_healthz) and its two targets to the report bench/report wrote,
# and prints them.
waitroom_report() {
    local out=$1
    [[ -s "$WORK/waitroom.json" && -s "$out" ]] || return 0
    jq --slurpfile w "$WORK/waitroom.json" '
        def status(ok): if .value == null then "not met (no value)" elif ok then "met" else "not met" end;
        $w[0] as $w |
        .scenarios.waiting_room = $w
        | .ratios.queue_poll_over_healthz = $w.poll_over_healthz
        | .ratios.admissions_under_load_over_configured = $w.admission.figures_over_configured
        | .targets += [
            ({name: "queue poll >= 0.8x healthz", value: $w.poll_over_healthz, limit: 0.8, op: ">="}
             | . + {status: status(.value >= .limit)}),
            ({name: "admissions per minute under the polling crowd within 5% of the configured rate",
              value: $w.admission.figures_over_configured, limit: 0.05, op: "|1 - x| <="}
             | . + {status: status((.value - 1 | fabs) <= .limit)})
          ]' "$out" >"$out.tmp" && mv "$out.tmp" "$out"
    jq -r '.scenarios.waiting_room as $w |
        def f: if . == null then "-" else tostring end;
        def lat: if . == null then "-" else "p50 \(.p50 | f) ms, p99 \(.p99 | f) ms, p99.9 \(.p999 | f) ms" end;
        "",
        "waiting room       \($w.crowd) buyers polling: \($w.poll.rps | f) polls/s; \($w.poll.latency_ms | lat)",
        "                   healthz right before \($w.healthz.rps | f) req/s; through the poll script \($w.control_healthz_via_poll_script.rps | f) req/s",
        "                   queue poll / healthz \($w.poll_over_healthz | f) (over the control: \($w.poll_over_control | f))",
        "                   admissions/min: configured \($w.admission.configured_per_minute), room figures \($w.admission.figures_per_minute | f), seen by the pollers \($w.admission.polls_per_minute | f)",
        (.targets[-2:][] | "  \(.status | if . == "met" then "met    " elif startswith("not met") then "NOT MET" else . end)  \(.name)  (\(.value | f))")' "$out"
}
