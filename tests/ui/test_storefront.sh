#!/usr/bin/env bash
# test_storefront.sh — the storefront (GET /), the organiser console (GET /admin/) and the
# API reference (GET /docs) in real headless Chromium, driven by tests/ui/storefront.mjs
# through playwright-core (Debian's chromium; no browser download).
#
# Starts a ticketd (development, its own fresh database on the test PostgreSQL, the test
# Redis), turns http/openapi.yaml into JSON for the answer checks, installs the npm packages
# of tests/ui/package.json when they are missing (npm ci, from the lock file), puts Prism in
# front of ticketd as a validating proxy (prism proxy --errors: an answer or request that
# breaks http/openapi.yaml becomes an error), and runs the scenarios. Screenshots of every step stay in $TICKETD_UI_OUT (default build/ui-artifacts/).
# Needs the stores that scripts/test.sh starts; ports from TICKETD_TEST_REDIS_PORT /
# TICKETD_TEST_PG_PORT.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${TICKETD_BIN:-$repo/build/ticketd}
redis_port=${TICKETD_TEST_REDIS_PORT:-6391}
pg_port=${TICKETD_TEST_PG_PORT:-5441}
token=tk-test-only-admin-token-0123456789abcdef
db=tk_store_$$
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=${TICKETD_UI_OUT:-$(dirname "$bin")/ui-artifacts}

fail() {
    echo "storefront test: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

command -v node >/dev/null || fail "no node; the machine's Node.js (20 or later) is needed"
[[ -x /usr/bin/chromium ]] || fail "no /usr/bin/chromium; run scripts/install-deps.sh"
if [[ ! -d "$here/node_modules/playwright-core" || ! -d "$here/node_modules/ajv" || ! -x "$here/node_modules/.bin/prism" ]]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed in tests/ui"
fi

mkdir -p "$out"
rm -f "$out"/*.png
server=""
prism=""
cleanup() {
    [[ -n "$prism" ]] && kill "$prism" 2>/dev/null && { wait "$prism" 2>/dev/null || true; } # prism exits non-zero on SIGTERM
    [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))' \
    "$repo/http/openapi.yaml" "$out/openapi.json" || fail "http/openapi.yaml does not parse"

psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE $db" >/dev/null
TICKETD_ENV=development TICKETD_ADMIN_TOKEN=$token TICKETD_LISTEN=127.0.0.1:$port TICKETD_PAYMENT_LATENCY_MS=150 \
    TICKETD_REDIS_URL=redis://127.0.0.1:$redis_port/0 TICKETD_PG_URL=postgresql://postgres@127.0.0.1:$pg_port/$db \
    TICKETD_CLIENT_HOLD_RATE=0 TICKETD_CLIENT_MAX_HOLDS=0 TICKETD_LOG_LEVEL=warn "$bin" >"$out/ticketd.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || fail "ticketd did not start (see $out/ticketd.log)"

prism_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$here/node_modules/.bin/prism" proxy "$repo/http/openapi.yaml" "http://127.0.0.1:$port" --host 127.0.0.1 \
    --port "$prism_port" --errors >"$out/prism.log" 2>&1 &
prism=$!
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$prism_port/healthz" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$prism_port/healthz" || fail "prism did not start (see $out/prism.log)"

cd "$here"
timeout 300 node storefront.mjs "http://127.0.0.1:$port" "$token" "$out" "$out/openapi.json" "http://127.0.0.1:$prism_port"
