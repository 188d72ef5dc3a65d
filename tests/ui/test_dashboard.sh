#!/usr/bin/env bash
# test_dashboard.sh — the admin dashboard in real headless Chromium, during a sale.
#
# Starts a ticketd (development, its own fresh database on the test PostgreSQL, the test
# Redis), creates an event, runs a small sale against it — holds, payments, a cancel —
# then loads /admin/ in Debian's chromium through tests/ui/dashboard.sh, and checks that
# every figure the page shows equals what GET /events/stats/ answers at the same moment.
# Keeps the screenshot (build dir or $TICKETD_UI_OUT). Needs the stores that
# scripts/test.sh starts; ports from TICKETD_TEST_REDIS_PORT / TICKETD_TEST_PG_PORT.
set -euo pipefail

UI_NAME=dashboard
UI_DB=tk_ui_$$
out=${TICKETD_UI_OUT:-$(mktemp -d /tmp/tk-dashboard.XXXXXX)}
# shellcheck source=tests/ui/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
J='Content-Type: application/json'

ui_start_ticketd TICKETD_PAYMENT_LATENCY_MS=0

event=$(curl -sf -X POST "http://127.0.0.1:$port/admin/events" -H "$J" -H "Authorization: Bearer $token" \
    -d '{"name": "Dashboard", "date": "2035-01-01T20:00:00Z", "ticket_types": [{"type": "VIP", "price": 350, "amount": 50},
         {"type": "Standing", "price": 49.5, "amount": 200}]}' | jq -r .event.id)

# the sale: 12 holds, 7 of them paid, 1 cancelled, the rest still held
for i in $(seq 12); do
    type=VIP; ((i % 3 == 0)) && type=Standing
    rid=$(curl -sf -X POST "http://127.0.0.1:$port/events/reservation/" -H "$J" \
        -d "{\"event_id\": \"$event\", \"tickets\": [{\"type\": \"$type\", \"amount\": 2}]}" | jq -r .reservation_id)
    if ((i <= 7)); then
        curl -sf -X PUT "http://127.0.0.1:$port/events/reservation/" -H "$J" -d "{\"reservation_id\": \"$rid\"}" >/dev/null
    elif ((i == 8)); then
        curl -sf -X DELETE "http://127.0.0.1:$port/events/reservation/" -H "$J" -d "{\"reservation_id\": \"$rid\"}" >/dev/null
    fi
done
sleep 0.5 # the payments' answers are recorded

stats=$(curl -sf "http://127.0.0.1:$port/events/stats/?event_id=$event" -H "Authorization: Bearer $token")
"$here/dashboard.sh" --budget 4000 --min-polls 2 --out "$out" "http://127.0.0.1:$port" "$token" "$event" >/dev/null ||
    ui_fail "the page shows no live figures: $(grep '^status=' "$out/stats.txt" 2>/dev/null || echo 'no status')"

# every figure on the page equals the endpoint's
checked=0
while IFS='=' read -r page_id jq_path; do
    want=$(jq -r "$jq_path" <<<"$stats")
    got=$(grep "^$page_id=" "$out/stats.txt" | head -1 | cut -d= -f2-)
    if [[ -z "$got" ]] || ! python3 -c "import sys; sys.exit(0 if abs(float('$got') - float('$want')) < 1e-9 else 1)" 2>/dev/null; then
        ui_fail "$page_id shows '$got', the stats endpoint says '$want'"
    fi
    checked=$((checked + 1))
done <<'MAP'
stat-capacity=.live.capacity
stat-available=.live.available
stat-held=.live.held
stat-sold=.live.sold
stat-cancelled=.live.cancelled
stat-expired=.live.expired
stat-revenue=.live.revenue
type-VIP-sold=.live.ticket_types.VIP.sold
type-VIP-held=.live.ticket_types.VIP.held
type-VIP-available=.live.ticket_types.VIP.available
type-Standing-sold=.live.ticket_types.Standing.sold
type-Standing-held=.live.ticket_types.Standing.held
MAP
[[ -s "$out/dashboard.png" ]] || ui_fail "no screenshot"
[[ "$(jq -r .live.sold <<<"$stats")" -gt 0 && "$(jq -r .live.held <<<"$stats")" -gt 0 ]] || ui_fail "the sale did not happen"
echo "dashboard test: $checked figures match the stats endpoint; screenshot $out/dashboard.png"
echo "1 passed, 0 failed"
