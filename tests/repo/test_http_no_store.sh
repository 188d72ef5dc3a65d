#!/usr/bin/env bash
# test_http_no_store.sh — fails when anything under http/ speaks to a store directly: a
# hiredis or libpq header, or a redisReply, named in http/ itself or reached through an
# engine header it includes. http/ asks the engine for typed results (engine/*.h) and
# renders them; the Redis and PostgreSQL conversations, their retries and their decoding
# belong to engine/ (issue 13, "http/ speaks only HTTP").
#
#   test_http_no_store.sh SOURCE_DIR [BUILD_DIR]
# With BUILD_DIR, every http/ source is also run through its own compile command with -M
# (from BUILD_DIR/compile_commands.json) and the headers it really includes are checked.
set -euo pipefail

repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${2:-}
cd "$repo"

status=0
mapfile -t offenders < <(grep -rlE 'redisReply|hiredis|libpq-fe' http/ | sort)
if ((${#offenders[@]})); then
    echo "http/ must not talk to Redis or PostgreSQL; these files do:"
    for f in "${offenders[@]}"; do
        grep -nE 'redisReply|hiredis|libpq-fe' "$f" | head -n 3 | sed "s|^|  $f:|"
    done
    status=1
fi

if [[ -n "$build" ]]; then
    python3 - "$repo" "$build/compile_commands.json" <<'PY' || status=1
import json, os, shlex, subprocess, sys

repo, db = sys.argv[1], sys.argv[2]
bad = 0
checked = 0
for entry in json.load(open(db)):
    src = os.path.relpath(entry["file"], repo)
    if not src.startswith("http/") or not src.endswith(".c"):
        continue
    args = shlex.split(entry["command"])
    # drop the output and the -c; ask for the dependency list instead
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD"):
            continue
        out.append(a)
    deps = subprocess.run(out + ["-M"], cwd=entry["directory"], capture_output=True, text=True, check=True).stdout
    headers = [h for h in deps.replace("\\\n", " ").split() if "hiredis/" in h or "libpq-fe.h" in h]
    checked += 1
    if headers:
        bad += 1
        print(f"  {src} includes, through engine headers: {' '.join(sorted(set(headers))[:3])}")
print(f"http/: {checked} sources compiled with -M")
sys.exit(1 if bad else 0)
PY
fi
((status == 0)) && echo "http/: $(find http -type f | wc -l) files, none reaches hiredis, libpq-fe or redisReply"
exit "$status"
