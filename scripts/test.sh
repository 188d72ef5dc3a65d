#!/usr/bin/env bash
# test.sh — build ticketd and run the whole test suite (README command #2).
#
#   scripts/test.sh               normal build in build/
#   scripts/test.sh --sanitize    Debug build with ASan + UBSan in build-asan/
#   scripts/test.sh --tsan        Debug build with TSan in build-tsan/, integration tests only
#   scripts/test.sh --cluster     normal build in build/, the tests labelled `cluster` on Redis Cluster
#   scripts/test.sh --sanitize --cluster   the same in the ASan + UBSan build
#
# Starts the *test* Redis and PostgreSQL (ports 6391/5441, never the dev ones) and
# hands them to the tests as TICKETD_TEST_REDIS_URL / TICKETD_TEST_PG_URL (and
# TICKETD_TEST_REDIS_PORT / TICKETD_TEST_PG_PORT), with TICKETD_BIN and
# TICKETD_SOURCE_DIR. With --cluster it starts the services profile cluster-test instead
# (3 masters + 3 replicas on 7101-7106, PostgreSQL 5443; TICKETD_CLUSTER_PORT and
# TICKETD_CLUSTER_PG_PORT move them) and also hands the seeds over as
# TICKETD_TEST_REDIS_CLUSTER, which makes the harness run every test server on the cluster
# (tests/support/harness.h). The services are stopped on exit unless TICKETD_KEEP_SERVICES=1.
# Exits with ctest's status.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

BUILD_DIR=build
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
CTEST_SELECT=()
PROFILE="test"
CLUSTER=0
for arg in "$@"; do
    case "$arg" in
    --cluster) CLUSTER=1 ;;
    --sanitize)
        BUILD_DIR=build-asan
        CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Debug -DTICKETD_ASAN=ON -DTICKETD_UBSAN=ON)
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        # the fault scenarios (minutes of outages) and the bench smoke run once, in the normal build
        CTEST_SELECT=(-LE "fault|bench")
        ;;
    --tsan)
        # the threaded parts (loops, workers, refresher, writer, metrics) under ThreadSanitizer:
        # the integration tests drive a TSan-built server; a race aborts it and fails its test
        BUILD_DIR=build-tsan
        CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Debug -DTICKETD_TSAN=ON)
        CTEST_SELECT=(-L integration -E "test_dashboard|test_storefront|fault_|bench_")
        export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
        ;;
    *)
        echo "usage: $0 [--sanitize | --tsan] [--cluster]" >&2
        exit 2
        ;;
    esac
done
if ((CLUSTER)); then
    # reservations (with the race), payments, idempotency and persistence, unchanged, on the
    # cluster, and the cluster's own tests; with --sanitize or --tsan in that build
    PROFILE=cluster-test
    CTEST_SELECT=(-L cluster)
fi

scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" "${CMAKE_ARGS[@]}"
cmake --build "$BUILD_DIR" -j2

# shellcheck disable=SC2317  # called through the EXIT trap
stop_services() {
    [[ "${TICKETD_KEEP_SERVICES:-0}" == 1 ]] || scripts/services.sh stop "$PROFILE" || true
}
trap stop_services EXIT
scripts/services.sh start "$PROFILE"
unset TICKETD_REDIS_CLUSTER TICKETD_TEST_REDIS_CLUSTER # only the cluster profile's env sets them
eval "$(scripts/services.sh env "$PROFILE")"

# url_port URL: the port of scheme://host:PORT/path
url_port() {
    local rest=${1##*:}
    echo "${rest%%/*}"
}
export TICKETD_TEST_PG_URL=$TICKETD_PG_URL
export TICKETD_TEST_REDIS_PORT TICKETD_TEST_PG_PORT
if [[ -n "${TICKETD_REDIS_CLUSTER:-}" ]]; then
    # the first seed stands in wherever a test asks for "the" Redis port
    export TICKETD_TEST_REDIS_CLUSTER=$TICKETD_REDIS_CLUSTER
    export TICKETD_TEST_REDIS_URL=redis://${TICKETD_REDIS_CLUSTER%%,*}/0
    unset TICKETD_REDIS_CLUSTER
else
    export TICKETD_TEST_REDIS_URL=$TICKETD_REDIS_URL
fi
TICKETD_TEST_REDIS_PORT=$(url_port "$TICKETD_TEST_REDIS_URL")
TICKETD_TEST_PG_PORT=$(url_port "$TICKETD_PG_URL")
export TICKETD_BIN=$REPO/$BUILD_DIR/ticketd
export TICKETD_SOURCE_DIR=$REPO

# --no-tests=error: a build that registers no test must not pass as green.
rc=0
ctest --test-dir "$BUILD_DIR" --output-on-failure -j1 --no-tests=error "${CTEST_SELECT[@]}" || rc=$?
exit "$rc"
