#!/usr/bin/env bash
# test_bench_no_engine.sh — fails when bench/ reaches into engine/: an #include of an
# engine header, or a script that compiles an engine source. bench/ measures the built
# service from outside (HTTP, redis-benchmark); a benchmark of one engine component is a
# CMake target under tests/perf/, built with the engine like every other target.
set -euo pipefail

repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo"

failures=0
while IFS= read -r hit; do
    echo "bench/ includes engine code: $hit"
    failures=$((failures + 1))
done < <(grep -rnE '#[[:space:]]*include[[:space:]]*["<]engine/' bench/ || true)
# prose (README.md) may name engine files; programs and scripts may not use them
while IFS= read -r hit; do
    echo "bench/ builds engine sources: $hit"
    failures=$((failures + 1))
done < <(grep -rnE --exclude='*.md' 'engine/[A-Za-z0-9_]+\.c\b' bench/ || true)
if ((failures)); then
    exit 1
fi
echo "bench/: $(find bench -type f | wc -l) files, none includes or builds engine code"
