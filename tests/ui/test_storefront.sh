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

UI_NAME=storefront
UI_DB=tk_store_$$
# shellcheck source=tests/ui/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out=${TICKETD_UI_OUT:-$(dirname "$bin")/ui-artifacts}

command -v node >/dev/null || ui_fail "no node; the machine's Node.js (20 or later) is needed"
[[ -x /usr/bin/chromium ]] || ui_fail "no /usr/bin/chromium; run scripts/install-deps.sh"
if [[ ! -d "$here/node_modules/playwright-core" || ! -d "$here/node_modules/ajv" || ! -x "$here/node_modules/.bin/prism" ]]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || ui_fail "npm ci failed in tests/ui"
fi

mkdir -p "$out"
rm -f "$out"/*.png
python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))' \
    "$repo/http/openapi.yaml" "$out/openapi.json" || ui_fail "http/openapi.yaml does not parse"

ui_start_ticketd TICKETD_PAYMENT_LATENCY_MS=150 TICKETD_CLIENT_HOLD_RATE=0 TICKETD_CLIENT_MAX_HOLDS=0

prism_port=$(ui_free_port)
"$here/node_modules/.bin/prism" proxy "$repo/http/openapi.yaml" "http://127.0.0.1:$port" --host 127.0.0.1 \
    --port "$prism_port" --errors >"$out/prism.log" 2>&1 &
prism=$!
ui_on_exit+=("$prism") # prism exits non-zero on SIGTERM
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$prism_port/healthz" && break; sleep 0.1; done
curl -s -o /dev/null "http://127.0.0.1:$prism_port/healthz" || ui_fail "prism did not start (see $out/prism.log)"

cd "$here"
timeout 300 node storefront.mjs "http://127.0.0.1:$port" "$token" "$out" "$out/openapi.json" "http://127.0.0.1:$prism_port"
