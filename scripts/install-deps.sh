#!/usr/bin/env bash
# install-deps.sh — install every Debian 12 package ticketd needs to build, test and run.
#
# Idempotent: asks dpkg which packages are missing and only then runs
# `apt-get update` (once) and `apt-get install` for exactly those. Runs apt as
# root directly, or through sudo when invoked as an ordinary user.
set -euo pipefail

PACKAGES=(
    # toolchain and formatting
    build-essential cmake pkgconf clang-format
    # libraries the C code links against
    libh2o-evloop-dev libh2o-dev libhiredis-dev libpq-dev libmsgpack-dev
    libjansson-dev check libssl-dev zlib1g-dev
    # fuzzing (cmake -DTICKETD_FUZZ=ON, driven by tests/fuzz/run.sh): clang with libFuzzer and
    # the sanitizer runtimes; llvm-profdata/llvm-cov for the coverage replay
    clang libclang-rt-14-dev llvm-14
    # services the engine talks to
    redis-server redis-tools postgresql-15 postgresql-client-15
    # benchmarking, HTTP/2 client, plots, scripting helpers
    wrk nghttp2-client gnuplot-nox curl jq
    # repository checks (tests/repo/test_compose.sh parses docker-compose.yml)
    python3-yaml
    # the admin dashboard's browser test (tests/ui/test_dashboard.sh)
    chromium
    # ps/pgrep, runuser (used by scripts/services.sh)
    procps util-linux
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#PACKAGES[@]} packages already present"
    exit 0
fi

# apt needs root: use sudo when we are not root, fail clearly when we can't.
SUDO=()
if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-deps: missing ${missing[*]}, and not root and no sudo" >&2
        exit 1
    fi
fi

"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
