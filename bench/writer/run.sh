#!/usr/bin/env bash
# run.sh — build bench/writer/writer_bench.c against the engine sources it needs and run
# it: COPY+merge (engine/persist.c) versus libpq pipeline mode, see README.md.
#
#   bench/writer/run.sh [URL] [writer_bench options: -n N -r REPS -b B[,B...]]
#
# URL defaults to $TICKETD_PG_URL, else postgresql://postgres@127.0.0.1:5447/postgres
# (the PostgreSQL of `TICKETD_DATA_DIR=.data/wbench TICKETD_PG_PORT=5447 ...
# scripts/services.sh start test`). The binary goes to a temporary directory.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
URL=${TICKETD_PG_URL:-postgresql://postgres@127.0.0.1:5447/postgres}
if [[ $# -gt 0 && "$1" != -* ]]; then
    URL=$1
    shift
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cd "$REPO"
# shellcheck disable=SC2046 # pkg-config prints several words on purpose
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -I. -o "$OUT/writer_bench" \
    bench/writer/writer_bench.c engine/persist.c engine/outbox.c engine/money.c engine/timefmt.c engine/uuid.c \
    $(pkg-config --cflags --libs libpq msgpack) -lm
"$OUT/writer_bench" "$URL" "$@"
