#!/usr/bin/env bash
# dashboard.sh — loads the admin dashboard (GET /admin/) of a RUNNING ticketd in headless
# Chromium, lets it poll the stats for a few (virtual) seconds, then dumps the DOM and
# prints every figure the page shows (stat-*, type-<name>-*) as id=value lines, and takes
# a screenshot. It starts nothing itself.
#
#   tests/ui/dashboard.sh [--budget MS] [--min-polls N] [--out DIR] URL TOKEN EVENT_ID
#
#   URL       the server, e.g. http://127.0.0.1:8000
#   TOKEN     the admin token (or "-" to read it from TICKETD_ADMIN_TOKEN)
#   EVENT_ID  the event to watch
#
# The token and the event reach the page in the URL fragment (#token=…&event=…), which the
# page reads and clears; a fragment never leaves the browser. It does appear in this
# machine's process list while Chromium runs: use throw-away tokens. Needs Debian's
# chromium (apt-get install -y chromium) and python3.
#
# Writes DIR/dom.html, DIR/stats.txt, DIR/dashboard.png and DIR/chromium.log (DIR defaults
# to a new temporary directory, printed). Exits 0 when the page shows live figures after at
# least N polls (default 2), 1 when it does not (the page's status line says why, e.g.
# "token refused"), 2 on bad usage or a missing browser.
set -euo pipefail

usage() {
    sed -n '7,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

budget=5000
min_polls=2
out=""
while (($#)); do
    case "$1" in
    --budget) budget=${2:?}; shift 2 ;;
    --min-polls) min_polls=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) echo "dashboard: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
(($# == 3)) || usage
base=${1%/}
token=$2
event=$3
[[ "$token" == "-" ]] && token=${TICKETD_ADMIN_TOKEN:?TICKETD_ADMIN_TOKEN is not set}
[[ "$budget" =~ ^[0-9]+$ && "$min_polls" =~ ^[0-9]+$ ]] || usage

browser=""
for candidate in chromium chromium-browser; do
    if command -v "$candidate" >/dev/null 2>&1; then
        browser=$(command -v "$candidate")
        break
    fi
done
if [[ -z "$browser" ]]; then
    echo "dashboard: no chromium; install it with: apt-get install -y chromium" >&2
    exit 2
fi

if [[ -z "$out" ]]; then
    out=$(mktemp -d /tmp/tk_dashboard.XXXXXX)
fi
mkdir -p "$out"
profile=$(mktemp -d /tmp/tk_chromium.XXXXXX)
cleanup() { rm -rf "$profile"; }
trap cleanup EXIT

fragment=$(python3 -c 'import sys, urllib.parse as u; print(u.urlencode({"token": sys.argv[1], "event": sys.argv[2]}))' \
    "$token" "$event")
page="$base/admin/#$fragment"

# One fresh, quiet browser per run: no sandbox (we may be root), no GPU, no calls home.
run_chromium() {
    timeout 90 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-default-apps --disable-extensions --mute-audio --hide-scrollbars \
        --user-data-dir="$profile" --window-size=1280,1500 --virtual-time-budget="$budget" \
        "$@" "$page" 2>>"$out/chromium.log"
}

: >"$out/chromium.log"
if ! run_chromium --dump-dom >"$out/dom.html"; then
    echo "dashboard: chromium failed to load $base/admin/ (see $out/chromium.log)" >&2
    exit 1
fi
(cd "$out" && run_chromium --screenshot="$out/dashboard.png" >/dev/null) ||
    echo "dashboard: no screenshot (see $out/chromium.log)" >&2

# The figures: each element whose id starts stat- or type- (not the bars), by data-value
# when the page set one, else by its text; then the status line and the poll count.
python3 - "$out/dom.html" "$min_polls" >"$out/stats.txt" <<'EOF' && verdict=0 || verdict=$?
import sys
from html.parser import HTMLParser


class Figures(HTMLParser):
    def __init__(self):
        super().__init__()
        self.values = {}
        self.open = []  # [id, attrs, text parts, depth]

    def handle_starttag(self, tag, attrs):
        for entry in self.open:
            entry[3] += 1
        a = dict(attrs)
        ident = a.get("id") or ""
        if ident.startswith(("stat-", "type-", "status", "poll-count")) and not ident.endswith("-bar"):
            self.open.append([ident, a, [], 1])

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        for entry in list(self.open):
            entry[3] -= 1
            if entry[3] == 0:
                self.open.remove(entry)
                ident, a, text = entry[0], entry[1], " ".join("".join(entry[2]).split())
                value = a.get("data-value")
                self.values[ident] = (value if value not in (None, "") else text, a, text)

    def handle_data(self, data):
        for entry in self.open:
            entry[2].append(data)


parser = Figures()
with open(sys.argv[1], encoding="utf-8") as f:
    parser.feed(f.read())
min_polls = int(sys.argv[2])

for ident in sorted(k for k in parser.values if k.startswith(("stat-", "type-"))):
    print(f"{ident}={parser.values[ident][0]}")
status = parser.values.get("status", ("", {"data-state": "unloaded"}, "the page did not load (see chromium.log)"))
state = status[1].get("data-state", "")
polls = parser.values.get("poll-count", ("0", {}, ""))[0]
print(f"status={state}: {status[2]}")
print(f"polls={polls}")
ok = state == "live" and polls.isdigit() and int(polls) >= min_polls
sys.exit(0 if ok else 1)
EOF

cat "$out/stats.txt"
echo "dashboard: DOM, figures and screenshot in $out"
if ((verdict != 0)); then
    echo "dashboard: the page shows no live figures after $min_polls polls" >&2
    exit 1
fi
