#!/usr/bin/env bash
# The benchmark suite's one command (see bench/README.md).
#
#   bench/run.sh            full matrix (~25 min): installs the optional
#                           references' packages with apt-get when missing,
#                           builds in Release into build-bench/, writes
#                           bench/results/latest*.csv, latest.md, docs/bench.png
#                           and the table in bench/README.md
#   bench/run.sh --quick    CI smoke (~20 s after the build): every mode and
#                           transport for a fraction of a second, no package
#                           installs, no files written; exit 1 on any error,
#                           mismatch or starved connection
#
# Anything after the first argument goes to bench/matrix.py, e.g.
#   bench/run.sh --runs 5 --duration 5 --cells p10,p100 --servers ss-threading,threads
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
if [ "${1:-}" = "--quick" ]; then
    quick=1
    shift
fi
build="${SS_BENCH_BUILD:-build-bench}"

# Optional packages: the libuv and libevent references and the plot. Each
# is skipped (with a message) if it cannot be installed.
install_optional() {
    local missing=()
    for pkg in pkg-config libuv1-dev libevent-dev gnuplot-nox; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "bench: installing ${missing[*]} with apt-get" >&2
    if ! { $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null; }; then
        echo "bench: could not install ${missing[*]}: those references are skipped" >&2
    fi
}

if [ "$quick" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    install_optional
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "bench: python3 is needed to run the matrix (apt-get install python3)" >&2
    exit 1
fi

echo "bench: building library, examples and bench (Release) in $build/" >&2
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSS_BUILD_BENCH=ON -DSS_BUILD_TESTS=OFF \
    -DSS_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

if [ "$quick" -eq 1 ]; then
    exec python3 bench/smoke.py "$build"
fi
exec python3 bench/matrix.py --build "$build" "$@"
