#!/usr/bin/env bash
# tests/fuzz/run.sh — build and run the libFuzzer targets of every decoder of outside input.
#
#   tests/fuzz/run.sh [seconds] [target...]     (default: 60 seconds each, every target)
#
# The targets are CMake's (tests/fuzz/CMakeLists.txt: one per tests/fuzz/fuzz_*.c). This
# script configures build-fuzz/ with clang and -DTICKETD_FUZZ=ON (libFuzzer + ASan + UBSan)
# and build-fuzz/coverage/ with TICKETD_FUZZ_COVERAGE as well, builds the target `fuzz` in
# each, then runs every target for the given seconds on a copy of its seed corpus
# (tests/fuzz/corpus/<target>/ is never written to) with tests/fuzz/<target>.dict when there
# is one. Inputs that once crashed a target are kept in tests/fuzz/regressions/<target>/
# and replayed first, every run. Any crash, leak, sanitizer report or timeout fails the
# script and leaves the input in build-fuzz/artifacts/<target>/.
# Afterwards the coverage build replays the grown corpus and prints the line coverage of
# the file under test: the .c file of the first project header the target includes
# (skipped when llvm-profdata/llvm-cov are missing).
# Environment: CC (default clang).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
SECONDS_EACH=${1:-60}
shift || true
CC=${CC:-clang}
OUT=$REPO/build-fuzz
COV=$OUT/coverage
FUZZ_DIR=$REPO/tests/fuzz

[[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] || {
    echo "usage: $0 [seconds] [target...]" >&2
    exit 2
}
command -v "$CC" >/dev/null || {
    echo "fuzz: $CC not found (scripts/install-deps.sh installs clang)" >&2
    exit 1
}

# Per-target settings where the default does not fit: the longest input tried (default 4096)
declare -A MAX_LEN=([fuzz_jsonr]=16384)
# and extra ASan options. fuzz_outbox: msgpack-c allocates count x 24 bytes for an
# array or map header before checking that the input holds that many elements, so a
# 5-byte entry asks for up to 96 GiB (tests/fuzz/README.md, "Findings"). In production
# glibc refuses such a request and the entry is refused; here ASan returns NULL for any
# single allocation over 256 MiB so that the run goes on to find other problems.
MSGPACK_ASAN=":allocator_may_return_null=1:max_allocation_size_mb=256:quarantine_size_mb=64"
declare -A ASAN_EXTRA=([fuzz_outbox]=$MSGPACK_ASAN)

# configure DIR [cmake options...]: a clang build tree with the fuzz targets, built
configure() {
    local dir=$1
    shift
    mkdir -p "$dir"
    if ! cmake -S "$REPO" -B "$dir" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTICKETD_FUZZ=ON "$@" \
        >"$dir/configure.log" 2>&1; then
        cat "$dir/configure.log" >&2
        return 1
    fi
    cmake --build "$dir" --target fuzz -j "$(nproc)"
}

# under_test TARGET: the .c file of the first project header the target includes
under_test() {
    local h
    h=$(sed -n 's/^#include "\(\(engine\|http\)\/[a-z_0-9]*\)\.h"/\1.c/p' "$FUZZ_DIR/$1.c" | head -n 1)
    [[ -n "$h" && -f "$REPO/$h" ]] && echo "$h"
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
    if [[ -d "$FUZZ_DIR/corpus/$t" ]]; then
        cp "$FUZZ_DIR/corpus/$t/"* "$work/"
    fi
    local dict=()
    [[ -f "$FUZZ_DIR/$t.dict" ]] && dict=(-dict="$FUZZ_DIR/$t.dict")
    local rc=0
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS="detect_leaks=1${ASAN_EXTRA[$t]:-}" \
        "$OUT/$t" -max_total_time="$SECONDS_EACH" -max_len="${MAX_LEN[$t]:-4096}" -timeout=10 -rss_limit_mb=2048 \
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
    local t=$1 profdata=llvm-profdata cov=llvm-cov file
    command -v llvm-profdata-14 >/dev/null && profdata=llvm-profdata-14
    command -v llvm-cov-14 >/dev/null && cov=llvm-cov-14
    command -v "$profdata" >/dev/null && command -v "$cov" >/dev/null || return 0
    file=$(under_test "$t") || return 0
    LLVM_PROFILE_FILE="$COV/$t.profraw" "$COV/$t" -runs=0 "$OUT/corpus/$t" >/dev/null 2>&1 || return 0
    "$profdata" merge -sparse -o "$COV/$t.profdata" "$COV/$t.profraw"
    "$cov" report "$COV/$t" -instr-profile="$COV/$t.profdata" "$REPO/$file" |
        awk -v t="$t" -v f="$file" '$1 ~ /\.c$/ { printf "fuzz: %-13s coverage of %s: lines %s, functions %s, branches %s\n", t, f, $10, $7, $13 }'
}

echo "fuzz: building the targets (build-fuzz/)"
configure "$OUT"
mapfile -t ALL <"$OUT/fuzz_targets.txt"
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
    [[ -x "$OUT/$t" ]] || {
        echo "fuzz: unknown target $t (targets: ${ALL[*]})" >&2
        exit 2
    }
done
have_coverage=0
if command -v llvm-profdata-14 >/dev/null || command -v llvm-profdata >/dev/null; then
    echo "fuzz: building the coverage replays (build-fuzz/coverage/)"
    configure "$COV" -DTICKETD_FUZZ_COVERAGE=ON
    have_coverage=1
fi
failed=()
for t in "${TARGETS[@]}"; do
    replay "$t" || failed+=("$t (regressions)")
    if ! fuzz "$t"; then
        failed+=("$t")
    elif ((have_coverage)); then
        coverage "$t"
    fi
done
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets ran ${SECONDS_EACH}s without a finding"
