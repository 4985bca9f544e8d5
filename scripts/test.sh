#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is
# missing (cmocka and pkg-config, from Debian's packages, with
# scripts/need-packages.sh: as root or with sudo, else it says what to run),
# builds everything with warnings as errors, and runs the whole ctest suite.
#
#   scripts/test.sh                      normal build in build/
#   SS_SANITIZE=address,undefined scripts/test.sh   sanitizer build in build-address-undefined/
set -euo pipefail
cd "$(dirname "$0")/.."

have_cmocka() {
    command -v pkg-config >/dev/null 2>&1 && pkg-config --exists cmocka
}

if ! have_cmocka; then
    # as root, or with sudo; otherwise it says what to run as root
    scripts/need-packages.sh scripts/test.sh libcmocka-dev pkg-config
fi

sanitize="${SS_SANITIZE:-}"
# no comma in the directory name: it would split the linker's -Wl,-rpath
build="build${sanitize:+-${sanitize//,/-}}"
jobs="$(nproc 2>/dev/null || echo 2)"
# RelWithDebInfo: -O2 finds warnings (maybe-uninitialized, truncation)
# that an unoptimized build never sees, and tests run the code users run.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSS_BUILD_TESTS=ON -DSS_WERROR=ON \
      -DSS_SANITIZE="$sanitize" >/dev/null
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
