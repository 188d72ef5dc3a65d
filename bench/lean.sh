# shellcheck shell=bash
# lean.sh — the scenarios of issue 14 ("the lean hold"), sourced by bench/run after
# lib.sh. Each leaves one JSON document in $WORK/<name>.json, as lib.sh's do:
#
#   lean_probe_start / lean_probe_end NAME HOLDS
#       around another scenario: Redis CPU (INFO cpu) and memory (used_memory) it cost
#       per hold, and the usec_per_call of FCALL and its usec per hold made (INFO
#       commandstats, reset at the start: every function called meanwhile counts), and
#       the twelve commands that took most usec per hold (Lua's inside FCALL too)
#       -> $WORK/NAME.redis.json
#   scenario_minimal NAME CALLS CONNECTIONS PIPELINE
#       redis-benchmark on bench_min_reserve (bench/minimal.lua): the floor a reservation
#       is compared with, loaded into the harness's own Redis
#   scenario_catalog_idle EVENTS SECONDS
#       idle Redis commands/s with the catalog as it is, then after creating events up to
#       EVENTS in all (and how long each creation took)
#   scenario_mass_expiry HOLDS
#       HOLDS holds of one event whose deadlines all fall on the same instant; how long
#       until every one is back on sale, through the sweeper alone (nobody reads them)

# redis_info_field SECTION FIELD: one numeric field of INFO SECTION.
redis_info_field() {
    rcli info "$1" | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

# redis_cmdstats: "calls usec" of FCALL and the calls of every command (Lua's included).
redis_cmdstats() {
    rcli info commandstats | tr -d '\r' | awk -F'[:,=]' '
        /^cmdstat_/ { all += $3 }
        /^cmdstat_fcall:/ { calls = $3; usec = $5 }
        END { print calls + 0, usec + 0, all + 0 }'
}

# redis_cmd_breakdown: every command's calls and usec as JSON {name: [calls, usec]}
# (Lua's own commands are counted apart from the FCALL that ran them, and within it).
redis_cmd_breakdown() {
    rcli info commandstats | tr -d '\r' | awk -F'[:,=]' '
        BEGIN { printf "{"; sep = "" }
        /^cmdstat_/ { sub(/^cmdstat_/, "", $1); printf "%s\"%s\":[%d,%d]", sep, $1, $3, $5; sep = "," }
        END { print "}" }'
}

redis_cpu_s() {
    rcli info cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 } END { printf "%.6f", s }'
}

lean_probe_start() {
    rcli config resetstat >/dev/null
    echo "$(redis_cpu_s) $(redis_info_field memory used_memory) $(date +%s.%N)" >"$WORK/$1.probe0"
}

# lean_probe_end NAME HOLDS: the costs since lean_probe_start NAME, per hold made.
lean_probe_end() {
    local name=$1 holds=$2 cpu0 mem0 t0 cpu1 mem1 calls usec all
    read -r cpu0 mem0 t0 <"$WORK/$name.probe0"
    cpu1=$(redis_cpu_s)
    mem1=$(redis_info_field memory used_memory)
    read -r calls usec all <<<"$(redis_cmdstats)"
    redis_cmd_breakdown >"$WORK/$name.cmds.json"
    jq -nc --argjson holds "$holds" --argjson cpu0 "$cpu0" --argjson cpu1 "$cpu1" --argjson mem0 "$mem0" \
        --argjson mem1 "$mem1" --argjson calls "$calls" --argjson usec "$usec" --argjson all "$all" \
        --argjson t0 "$t0" --argjson t1 "$(date +%s.%N)" --slurpfile cmds "$WORK/$name.cmds.json" '
        def per(a): if $holds > 0 then (a / $holds * 100 | round) / 100 else null end;
        {holds: $holds, seconds: (($t1 - $t0) * 1000 | round / 1000),
         redis_cpu_us_per_hold: per(($cpu1 - $cpu0) * 1e6),
         redis_cpu_share_of_a_core: ((($cpu1 - $cpu0) / ($t1 - $t0)) * 1000 | round / 1000),
         fcall_calls: $calls, fcall_usec_per_call: (if $calls > 0 then ($usec / $calls * 100 | round) / 100 else null end),
         fcall_calls_per_hold: per($calls), fcall_usec_per_hold: per($usec), redis_commands_per_hold: per($all),
         used_memory_delta: ($mem1 - $mem0), memory_bytes_per_hold: per($mem1 - $mem0),
         usec_per_hold_by_command: ($cmds[0] | to_entries | map(select(.value[1] > 0))
             | sort_by(-.value[1]) | .[:12] | map({key, value: per(.value[1])}) | from_entries),
         note: "CPU and memory of all of Redis over the scenario (the writer drains the outbox meanwhile, so memory per hold is net of what it deleted); FCALL usec_per_call covers every function called in that time"}' \
        >"$WORK/$name.redis.json"
}

# ---------------------------------------------------------------- minimal function

MIN_KEYS=("tkb:{b}:inv" "tkb:{b}:seq" "tkb:{b}:dl" "tkb:{b}:ob")

scenario_minimal() { # NAME CALLS CONNECTIONS PIPELINE
    local name=$1 n=$2 conns=$3 pipe=$4 seq0 seq1 until probe
    rcli -x function load replace <"$BENCH_DIR/minimal.lua" >/dev/null
    rcli hsetnx "${MIN_KEYS[0]}" ev:GA:avail 1000000000000 >/dev/null
    until=$(($(date +%s) * 1000 + 900000))
    local call=(FCALL bench_min_reserve 4 "${MIN_KEYS[@]}" ev:GA:avail 1 "$until" ffff0000-0000-4000-8000-000000000000)
    probe=$(rcli --raw "${call[@]}" 2>&1 | head -n1)
    if ! [[ "$probe" =~ ^[0-9]+$ ]]; then
        log "$name: skipped, bench_min_reserve probe answered: $probe"
        jq -nc --arg p "$probe" '{skipped: ("bench_min_reserve probe: " + $p)}' >"$WORK/$name.json"
        check "$name: bench_min_reserve probe answers an id" false
        return
    fi
    seq0=$(rcli --raw get "${MIN_KEYS[1]}")
    log "$name: redis-benchmark FCALL bench_min_reserve, $conns clients, -P $pipe, $n calls"
    lean_probe_start "$name"
    redis-benchmark -h 127.0.0.1 -p "$BENCH_REDIS_PORT" -c "$conns" -n "$n" -P "$pipe" --threads 2 \
        --csv "${call[@]}" >"$WORK/$name.csv" 2>"$WORK/$name.err" ||
        { cat "$WORK/$name.err" >&2; die "redis-benchmark failed"; }
    seq1=$(rcli --raw get "${MIN_KEYS[1]}")
    lean_probe_end "$name" $((seq1 - seq0))
    tail -n 1 "$WORK/$name.csv" | tr -d '"' | awk -F, -v n="$n" -v c=$((seq1 - seq0)) -v tool="redis-benchmark -c $conns -P $pipe --threads 2" '
        { printf "{\"tool\":\"%s\",\"calls\":%d,\"rps\":%d,\"latency_ms\":{\"mean\":%s,\"p50\":%s,\"p99\":%s,\"max\":%s},\"holds_created\":%d}\n",
                 tool, n, $2, $3, $5, $7, $8, c }' |
        jq -c --slurpfile r "$WORK/$name.redis.json" '. + {redis: $r[0]}' >"$WORK/$name.json"
    check "$name: every call made a hold ($((seq1 - seq0)) of $n)" eq $((seq1 - seq0)) "$n"
}

# ---------------------------------------------------------------- idle cost of the catalog

# idle_ops SECONDS: Redis commands/s while nothing but ticketd's own background runs,
# as "client_ops_per_s all_ops_per_s" (all: Lua's commands too, from commandstats).
idle_ops() {
    local c0 c1 a0 a1 t0 t1 _
    c0=$(redis_info_field stats total_commands_processed)
    read -r _ _ a0 <<<"$(redis_cmdstats)"
    t0=$(date +%s.%N)
    sleep "$1"
    c1=$(redis_info_field stats total_commands_processed)
    read -r _ _ a1 <<<"$(redis_cmdstats)"
    t1=$(date +%s.%N)
    awk -v c=$((c1 - c0)) -v a=$((a1 - a0)) -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%d %d\n", c / (t1 - t0), a / (t1 - t0) }'
}

scenario_catalog_idle() { # EVENTS SECONDS
    local want=$1 secs=$2 have c0 a0 c1 a1 i ms times=()
    log "catalog: idle Redis load now, then with $want events in all (${secs}s each)"
    read -r c0 a0 <<<"$(idle_ops "$secs")"
    have=$(PGDB=ticketd psql_q -c 'select count(*) from events')
    for ((i = have; i < want; i++)); do
        ms=$(curl -s -o "$WORK/event.json" -w '%{http_code} %{time_total}' -X POST "$BASE_URL/admin/events" \
            -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
            -d "{\"name\":\"Catalog Filler $i\",\"date\":\"$EVENT_DATE\",\"ticket_types\":[{\"type\":\"GA\",\"price\":20,\"amount\":100}]}")
        [[ "${ms% *}" == 201 ]] || die "POST /admin/events answered ${ms% *}: $(cat "$WORK/event.json")"
        times+=("${ms#* }")
    done
    sleep 1 # every process has the new catalog, the sweeper has met every shard
    read -r c1 a1 <<<"$(idle_ops "$secs")"
    printf '%s\n' "${times[@]}" | awk -v have="$have" -v want="$want" -v c0="$c0" -v a0="$a0" -v c1="$c1" -v a1="$a1" '
        { v[NR] = $1 * 1000; s += $1 * 1000 }
        END {
            printf "{\"events_before\":%d,\"events_after\":%d,\"idle_before\":{\"client_ops_per_s\":%d,\"all_ops_per_s\":%d},", have, want, c0, a0
            printf "\"idle_after\":{\"client_ops_per_s\":%d,\"all_ops_per_s\":%d},", c1, a1
            printf "\"create_ms\":{\"first\":%.1f,\"last\":%.1f,\"mean\":%.1f,\"n\":%d}}\n", v[1], v[NR], NR ? s / NR : 0, NR }' \
        >"$WORK/catalog_idle.json"
    log "catalog: idle $a0 -> $a1 Redis commands/s (Lua's included), $have -> $want events"
}

# ---------------------------------------------------------------- mass expiry

# The script that moves the holds of up to 10,000 not yet moved hold lists of event ARGV[2]
# (those that fall due after ARGV[1] + ARGV[4]) to ARGV[1] + (ARGV[3] + i) mod ARGV[4], the
# i-th hold moved: the record's "u", its place in tk:{s}:dl (new hold lists of at most 64
# holds per deadline, as a batch of ticketd's makes them) and, records with "q", its
# tickets from the old deadline's held-ticket bucket to the new one's. Returns how many
# holds it moved. It knows the layout as lua/ticketd.lua's header documents it (HOLD
# LISTS, HELD-TICKET BUCKETS): buckets scored slot - 10^13, lists deadline - 2 x 10^13.
MASS_MOVE_LUA="
local at, e, off, spread = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local BASE = 10000000000000
local function slot(u) return u % 100 == 0 and u or u - u % 100 + 100 end
local function bucket_add(u, t, n)
    local f = 'q:' .. string.format('%d', slot(u)) .. ':' .. e .. ':' .. t
    if redis.call('HINCRBY', KEYS[1], f, n) <= 0 then
        redis.call('HDEL', KEYS[1], f)
        redis.call('ZREM', KEYS[3], f)
    else
        redis.call('ZADD', KEYS[3], string.format('%d', slot(u) - BASE), f)
    end
end
local lists = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. string.format('%d', at + spread - 1 - 2 * BASE),
    '(' .. string.format('%d', -BASE), 'LIMIT', 0, 10000)
local moved, by_until, order = 0, {}, {}
local function list_add(u, rid)
    local l = by_until[u]
    if not l or #l == 64 then
        l = {}
        by_until[u] = l
        order[#order + 1] = { u, l }
    end
    l[#l + 1] = rid
end
for _, m in ipairs(lists) do
    for rid in string.gmatch(string.match(m, '^h:%d+:(.*)$'), '[^ ]+') do
        local u = at + (off + moved) % spread
        moved = moved + 1
        local rec = cmsgpack.unpack(redis.call('HGET', KEYS[2], rid))
        if rec.q then
            for _, ticket in ipairs(rec.t) do
                bucket_add(rec.u, ticket[2], -1)
                bucket_add(u, ticket[2], 1)
            end
        end
        rec.u = u
        redis.call('HSET', KEYS[2], rid, cmsgpack.pack(rec))
        list_add(u, rid)
    end
    redis.call('ZREM', KEYS[3], m)
end
for _, bl in ipairs(order) do
    redis.call('ZADD', KEYS[3], string.format('%d', bl[1] - 2 * BASE),
        'h:' .. string.format('%d', bl[1]) .. ':' .. table.concat(bl[2], ' '))
end
return moved"

# scenario_mass_expiry HOLDS SPREAD_MS NAME: HOLDS one-ticket holds of a new event made
# straight with tk_reserve (as the FCALL baseline makes them, 10 min each), then their
# deadlines moved (MASS_MOVE_LUA) to SPREAD_MS consecutive milliseconds a few seconds ahead
# (hold i expires at AT + i mod SPREAD_MS): 1000 is "expiring in the same second" with each
# millisecond a deadline of its own, as holds made during a second would be; 1 is every
# hold at one instant. Nobody reads them: the figure is how long after the last deadline
# the sweeper has every ticket back on sale (held == 0), polled every 50 ms against Redis's
# clock, and apart when the last hold's own record was final (CANCELLED, in the outbox).
# Writes NAME.json.
scenario_mass_expiry() {
    local holds=$1 spread=$2 name=$3 e s keys held0 at now last held1s=-1 done_ms=-1 final_ms=-1 moved off=0 cap avail held sold left
    e=$(create_event "Mass Expiry" GA:10.00:$((2 * holds)))
    s=${e:0:4}
    mapfile -t keys < <(reserve_keys "$s")
    log "mass expiry: $holds holds through FCALL tk_reserve (-P 16), deadlines moved into $spread ms"
    redis-benchmark -h 127.0.0.1 -p "$BENCH_REDIS_PORT" -c 64 -n "$holds" -P 16 --threads 2 -r 2147483647 --csv \
        FCALL tk_reserve "${#keys[@]}" "${keys[@]}" "$e" "${s}0000-0000-4000-8000-__rand_int__" 600000 5 1 GA 1 \
        "ffff0000-0000-4000-8000-__rand_int__" >"$WORK/mass.csv" 2>"$WORK/mass.err" ||
        { cat "$WORK/mass.err" >&2; die "redis-benchmark failed"; }
    held0=$(rcli --raw hget "tk:{$s}:inv" "$e:GA:held")
    local eval_now="local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000)"
    at=$(($(rcli --raw eval "$eval_now" 0) + 8000))
    last=$((at + spread - 1))
    while moved=$(rcli --raw eval "$MASS_MOVE_LUA" 3 "tk:{$s}:inv" "tk:{$s}:res" "tk:{$s}:dl" "$at" "$e" "$off" \
        "$spread") && ((moved > 0)); do
        off=$((off + moved))
    done
    [[ "$moved" == 0 ]] || die "moving the deadlines failed: $moved"
    now=$(rcli --raw eval "$eval_now" 0)
    ((now < at)) || die "moving the deadlines took past the first of them ($((now - at)) ms late)"
    while :; do
        read -r now held left <<<"$(rcli --raw eval "$eval_now" 0) $(rcli --raw hget "tk:{$s}:inv" "$e:GA:held") \
            $(rcli --raw zcount "tk:{$s}:dl" -inf "(-10000000000000")"
        ((now >= last + 1000 && held1s < 0)) && held1s=$held
        ((now >= last && held == 0 && done_ms < 0)) && done_ms=$((now - last))
        ((now >= last && left == 0 && final_ms < 0)) && final_ms=$((now - last))
        ((done_ms >= 0 && final_ms >= 0)) && break
        ((now > last + 60000)) && break
        sleep 0.05
    done
    read -r cap avail held sold <<<"$(inventory "$e" GA)"
    jq -nc --argjson holds "$held0" --argjson done_ms "$done_ms" --argjson final_ms "$final_ms" --argjson h1 "$held1s" \
        --argjson spread "$spread" --argjson ob "$(outbox_len)" '
        {holds: $holds, spread_ms: $spread,
         back_on_sale_s: (if $done_ms >= 0 then $done_ms / 1000 else null end), held_1s_after: $h1,
         records_final_s: (if $final_ms >= 0 then $final_ms / 1000 else null end),
         timed_out_60s: ($done_ms < 0 or $final_ms < 0), outbox_after: $ob,
         note: "deadlines spread over spread_ms (one per ms); seconds from the last deadline until held == 0, and until no hold is left in the deadline set (records CANCELLED and in the outbox); polled every 50 ms; the writer drains the run'"'"'s backlog meanwhile"}' \
        >"$WORK/$name.json"
    log "mass expiry ($spread ms): $held0 holds back on sale $((done_ms)) ms after the last deadline (held 1 s after: $held1s), records final after $((final_ms)) ms"
    check "mass expiry ($spread ms): Redis avail + held + sold == cap" eq $((avail + held + sold)) "$cap"
}
