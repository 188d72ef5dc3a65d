#!/usr/bin/env bash
# dev.sh — one command to a running development server (README command #1).
#
# Installs missing Debian packages, builds ticketd (build/, RelWithDebInfo), starts
# the dev Redis and PostgreSQL (scripts/services.sh), then replaces itself with the
# server on $TICKETD_LISTEN (default 127.0.0.1:8000), seeded with demo events.
# The services keep running afterwards; stop them with `scripts/services.sh stop`.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j2

scripts/services.sh start dev
eval "$(scripts/services.sh env dev)" # TICKETD_REDIS_URL, TICKETD_PG_URL

exec env TICKETD_ENV=development TICKETD_LISTEN="${TICKETD_LISTEN:-127.0.0.1:8000}" build/ticketd --demo
