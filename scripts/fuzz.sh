#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan+UBSan) and runs
# each for a bounded time against its committed corpus in fuzz/corpus/.
#
#   scripts/fuzz.sh [SECONDS]      default 30 seconds per target
# New inputs found go to a temporary directory, not into the corpus; add
# the interesting ones by hand (they are printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"

if ! echo 'int LLVMFuzzerTestOneInput(const char*d,long n){(void)d;(void)n;return 0;}' |
        clang -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
    # clang's fuzzer runtime: as root, or with sudo; otherwise it says what to run
    scripts/need-packages.sh scripts/fuzz.sh clang libclang-rt-14-dev
fi

out="build-fuzz"
mkdir -p "$out"
# The library's sources as CMake picks them (the fiber backend, the
# poller), read from the compile commands of a configure-only build.
cmake -S . -B "$out/cmake" -DCMAKE_C_COMPILER=clang -DSS_BUILD_TESTS=OFF \
      -DSS_BUILD_EXAMPLES=OFF >/dev/null
mapfile -t sources < <(sed -n 's|^ *"file": "\(.*/src/.*\.c\)",\{0,1\}$|\1|p' \
                       "$out/cmake/compile_commands.json")
# With TLS built in (SS_TLS=AUTO found OpenSSL), OpenSSL's libraries too.
libs=(-lpthread)
printf '%s\n' "${sources[@]}" | grep -q '/src/filter/tls_io\.c$' && libs+=(-lssl -lcrypto)
fibers=0
grep -q -- '-DSS_HAVE_FIBERS=1' "$out/cmake/compile_commands.json" && fibers=1
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE "-DSS_HAVE_FIBERS=$fibers" -g -O1
        -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -Iinclude -Isrc)
status=0
for target in fuzz/fuzz_*.c; do
    name="$(basename "$target" .c)"
    corpus="fuzz/corpus/${name#fuzz_}"
    clang "${cflags[@]}" "$target" "${sources[@]}" "${libs[@]}" -o "$out/$name"
    found="$(mktemp -d)"
    echo "== $name: ${seconds}s, corpus $corpus"
    if ! "$out/$name" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 \
            -print_final_stats=1 "$found" "$corpus" >"$out/$name.log" 2>&1; then
        status=1
        tail -n 40 "$out/$name.log"
    else
        grep -E '^stat::number_of_executed_units|^Done' "$out/$name.log" || true
    fi
    echo "   new inputs: $(find "$found" -type f | wc -l) (in $found)"
done
exit "$status"
