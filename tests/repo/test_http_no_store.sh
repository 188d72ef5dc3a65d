#!/usr/bin/env bash
# test_http_no_store.sh — fails when anything under http/ speaks to a store directly: a
# hiredis or libpq header, or a redisReply. http/ asks the engine for typed results
# (engine/*.h) and renders them; the Redis and PostgreSQL conversations, their retries and
# their decoding belong to engine/ (issue 13, "http/ speaks only HTTP").
set -euo pipefail

repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo"

mapfile -t offenders < <(grep -rlE 'redisReply|hiredis|libpq-fe' http/ | sort)
if ((${#offenders[@]})); then
    echo "http/ must not talk to Redis or PostgreSQL; these files do:"
    for f in "${offenders[@]}"; do
        grep -nE 'redisReply|hiredis|libpq-fe' "$f" | head -n 3 | sed "s|^|  $f:|"
    done
    exit 1
fi
echo "http/: $(find http -type f | wc -l) files, none names hiredis, libpq-fe or redisReply"
