#!/usr/bin/env bash
# tests/fuzz/run.sh — build and run the libFuzzer targets of every decoder of outside input.
#
#   tests/fuzz/run.sh [seconds] [target...]     (default: 60 seconds each, every target)
#
# Each target in tests/fuzz/fuzz_*.c is compiled with clang -fsanitize=fuzzer,address,undefined
# together with the project sources it exercises (compiled directly, no CMake) into
# build-fuzz/, then run for the given seconds on a copy of its seed corpus
# (tests/fuzz/corpus/<target>/ is never written to). Inputs that once crashed a target are
# kept in tests/fuzz/regressions/<target>/ and replayed first, every run. Any crash, leak,
# sanitizer report or timeout fails the script and leaves the input in
# build-fuzz/artifacts/<target>/.
# Afterwards a coverage build replays the grown corpus and prints the line coverage of
# the file under test (skipped when llvm-profdata/llvm-cov are missing).
# Environment: CC (default clang).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
SECONDS_EACH=${1:-60}
shift || true
CC=${CC:-clang}
OUT=$REPO/build-fuzz
FUZZ_DIR=$REPO/tests/fuzz

[[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] || {
    echo "usage: $0 [seconds] [target...]" >&2
    exit 2
}
command -v "$CC" >/dev/null || {
    echo "fuzz: $CC not found (scripts/install-deps.sh installs clang)" >&2
    exit 1
}

# target -> the project sources it links (besides its own file)
declare -A SOURCES=(
    [fuzz_jsonr]="http/jsonr.c engine/uuid.c"
    [fuzz_query]="http/query.c"
    [fuzz_session]="http/session.c engine/uuid.c"
    [fuzz_outbox]="engine/outbox.c engine/uuid.c"
)
# target -> the file whose coverage is reported, and the longest input tried
declare -A UNDER_TEST=([fuzz_jsonr]=http/jsonr.c [fuzz_query]=http/query.c [fuzz_session]=http/session.c
    [fuzz_outbox]=engine/outbox.c)
declare -A MAX_LEN=([fuzz_jsonr]=16384 [fuzz_query]=4096 [fuzz_session]=4096 [fuzz_outbox]=4096)
# target -> extra ASan options. fuzz_outbox: msgpack-c allocates count x 24 bytes for an
# array or map header before checking that the input holds that many elements, so a
# 5-byte entry asks for up to 96 GiB (tests/fuzz/README.md, "Findings"). In production
# glibc refuses such a request and the entry is refused; here ASan returns NULL for any
# single allocation over 256 MiB so that the run goes on to find other problems.
declare -A ASAN_EXTRA=([fuzz_outbox]=":allocator_may_return_null=1:max_allocation_size_mb=256:quarantine_size_mb=64")

TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(fuzz_jsonr fuzz_query fuzz_session fuzz_outbox)

PKGS="libh2o-evloop hiredis libpq msgpack jansson openssl"
read -r -a PKG_CFLAGS <<<"$(pkg-config --cflags $PKGS)"
read -r -a PKG_LIBS <<<"$(pkg-config --libs $PKGS)"
COMMON=(-g -O1 -std=gnu11 -DH2O_USE_LIBUV=0 -D_GNU_SOURCE -I"$REPO" "${PKG_CFLAGS[@]}" -Wall -Wextra -Werror
    -Wno-unused-parameter -Wno-missing-field-initializers)

build() {
    local t=$1 srcs=()
    read -r -a srcs <<<"${SOURCES[$t]}"
    srcs=("${srcs[@]/#/$REPO/}")
    "$CC" "${COMMON[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
        -o "$OUT/$t" "$FUZZ_DIR/$t.c" "${srcs[@]}" "${PKG_LIBS[@]}"
    "$CC" "${COMMON[@]}" -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
        -o "$OUT/$t.cov" "$FUZZ_DIR/$t.c" "${srcs[@]}" "${PKG_LIBS[@]}"
}

# replay TARGET: run every saved regression input once, each on its own (a crash ends a run)
replay() {
    local t=$1 f bad=0 n=0
    [[ -d "$FUZZ_DIR/regressions/$t" ]] || return 0
    for f in "$FUZZ_DIR/regressions/$t"/*; do
        [[ -f "$f" ]] || continue
        n=$((n + 1))
        if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS="detect_leaks=1${ASAN_EXTRA[$t]:-}" \
            "$OUT/$t" "$f" >"$OUT/$t.regression.log" 2>&1; then
            echo "fuzz: $t: regression input ${f#"$REPO"/} fails again:" >&2
            grep -E 'runtime error|ERROR: |SUMMARY' "$OUT/$t.regression.log" | head -n 3 >&2
            bad=1
        fi
    done
    ((bad == 0)) && echo "fuzz: $t: $n regression inputs pass"
    return $bad
}

# fuzz TARGET: run it, print one summary line, fail on any finding
fuzz() {
    local t=$1 work=$OUT/corpus/$t log=$OUT/$t.log
    rm -rf "$work" "$OUT/artifacts/$t"
    mkdir -p "$work" "$OUT/artifacts/$t"
    cp "$FUZZ_DIR/corpus/$t/"* "$work/"
    local dict=()
    [[ -f "$FUZZ_DIR/$t.dict" ]] && dict=(-dict="$FUZZ_DIR/$t.dict")
    local rc=0
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS="detect_leaks=1${ASAN_EXTRA[$t]:-}" \
        "$OUT/$t" -max_total_time="$SECONDS_EACH" -max_len="${MAX_LEN[$t]}" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t/" "${dict[@]}" "$work" >"$log" 2>&1 || rc=$?
    local runs execs cov
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
    printf 'fuzz: %-13s %ss  %s runs  %s exec/s  %s  corpus %s files\n' "$t" "$SECONDS_EACH" "${runs:-?}" "${execs:-?}" \
        "${cov:-?}" "$(find "$work" -type f | wc -l)"
    if ((rc != 0)); then
        echo "fuzz: $t FAILED (exit $rc); last lines of $log:" >&2
        tail -n 60 "$log" >&2
        ls -l "$OUT/artifacts/$t" >&2
        return 1
    fi
}

# coverage TARGET: replay the corpus through the coverage build; line coverage of the file under test
coverage() {
    local t=$1 profdata=llvm-profdata cov=llvm-cov
    command -v llvm-profdata-14 >/dev/null && profdata=llvm-profdata-14
    command -v llvm-cov-14 >/dev/null && cov=llvm-cov-14
    command -v "$profdata" >/dev/null && command -v "$cov" >/dev/null || return 0
    LLVM_PROFILE_FILE="$OUT/$t.profraw" "$OUT/$t.cov" -runs=0 "$OUT/corpus/$t" >/dev/null 2>&1 || return 0
    "$profdata" merge -sparse -o "$OUT/$t.profdata" "$OUT/$t.profraw"
    "$cov" report "$OUT/$t.cov" -instr-profile="$OUT/$t.profdata" "$REPO/${UNDER_TEST[$t]}" |
        awk -v t="$t" -v f="${UNDER_TEST[$t]}" '$1 ~ /\.c$/ { printf "fuzz: %-13s coverage of %s: lines %s, functions %s, branches %s\n", t, f, $10, $7, $13 }'
}

mkdir -p "$OUT"
failed=()
for t in "${TARGETS[@]}"; do
    [[ -n "${SOURCES[$t]:-}" ]] || {
        echo "fuzz: unknown target $t" >&2
        exit 2
    }
    echo "fuzz: building $t"
    build "$t"
done
for t in "${TARGETS[@]}"; do
    replay "$t" || failed+=("$t (regressions)")
    if fuzz "$t"; then
        coverage "$t"
    else
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets ran ${SECONDS_EACH}s without a finding"
