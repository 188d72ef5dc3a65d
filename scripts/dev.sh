#!/usr/bin/env bash
# dev.sh — one command to a running development server (README command #1).
#
#   scripts/dev.sh              on one Redis (services profile dev: Redis 6390, PostgreSQL 5440)
#   scripts/dev.sh --cluster    on Redis Cluster (profile cluster: 3 masters + 3 replicas on
#                               7001-7006, PostgreSQL 5442; see scripts/services-cluster.sh)
#
# Installs missing Debian packages, builds ticketd (build/, RelWithDebInfo), starts the
# profile's Redis (or cluster) and PostgreSQL (scripts/services.sh), then replaces itself
# with the server on $TICKETD_LISTEN (default 127.0.0.1:8000), seeded with demo events.
# On the cluster the server gets TICKETD_REDIS_CLUSTER (the six nodes as seeds) in place
# of TICKETD_REDIS_URL. The services keep running afterwards; stop them with
# `scripts/services.sh stop` (or `stop cluster`).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

PROFILE=dev
case "${1:-}" in
"") ;;
--cluster) PROFILE=cluster ;;
*)
    echo "usage: $0 [--cluster]" >&2
    exit 2
    ;;
esac

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j2

scripts/services.sh start "$PROFILE"
unset TICKETD_REDIS_CLUSTER # set again below by the cluster profile only: it would override the URL
eval "$(scripts/services.sh env "$PROFILE")" # TICKETD_REDIS_URL or TICKETD_REDIS_CLUSTER, TICKETD_PG_URL

exec env TICKETD_ENV=development TICKETD_LISTEN="${TICKETD_LISTEN:-127.0.0.1:8000}" build/ticketd --demo
