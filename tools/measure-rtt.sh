#!/usr/bin/env bash
# How long does a server take to answer one message? Runs tools/rtt against
# the example servers and against the classic tutorial's pattern (read 1024
# bytes, send them back, repeat), with and without TCP_NODELAY, and - when
# python3 is installed - against the tutorial's Python server itself
# (bench/ref_python.py).
# A measurement to read, not a test: nothing here passes or fails.
#
#   tools/measure-rtt.sh [BUILD_DIR] [SIZE...]     (default: build, 4096)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
sizes=("${@:-4096}")
rtt="$build/tools/rtt"
[ -x "$rtt" ] || { echo "measure-rtt: build first: $rtt is missing" >&2; exit 1; }

pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# Starts a server that prints "listening on URL"; sets $url.
start() {
    local out
    out="$(mktemp)"
    "$@" >"$out" 2>/dev/null &
    pids+=($!)
    for _ in $(seq 1 100); do
        grep -q '^listening' "$out" && break
        sleep 0.05
    done
    url="$(sed -n 's/^listening on //p' "$out" | head -n 1)"
    rm -f "$out"
}

measure() {
    local name="$1"
    for size in "${sizes[@]}"; do
        printf '%-44s %s\n' "$name" "$("$rtt" --connect "$url" --size "$size" --rounds 100)"
    done
}

if command -v python3 >/dev/null; then # the tutorial's server, from bench/
    start python3 bench/ref_python.py --mode sync --listen tcp://127.0.0.1:0 --quiet
    measure "python tutorial (recv 1024 + sendall)"
fi

start "$rtt" --serve tcp://127.0.0.1:0 --chunk 1024
measure "C, recv 1024 + send_all, Nagle on"
start "$rtt" --serve tcp://127.0.0.1:0 --chunk 1024 --nodelay
measure "C, recv 1024 + send_all, TCP_NODELAY"
for server in uppercase_server echo_server robust_server; do
    start "$build/examples/$server" --quiet --listen tcp://127.0.0.1:0
    measure "examples/$server"
done
