#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is
# missing (cmocka and pkg-config, haproxy for the load-balancer test,
# systemd for systemd-socket-activate, OpenSSL's libssl-dev and openssl
# tool and python3 for the TLS tests, from Debian's packages, with
# scripts/need-packages.sh: as root or with
# sudo, else it says what to run), builds everything with warnings as
# errors, and runs the whole ctest suite.
#
#   scripts/test.sh                      normal build in build/
#   SS_SANITIZE=address,undefined scripts/test.sh   sanitizer build in build-address-undefined/
set -euo pipefail
cd "$(dirname "$0")/.."

have_cmocka() {
    command -v pkg-config >/dev/null 2>&1 && pkg-config --exists cmocka
}

# Debian installs it in /usr/sbin, which a user's PATH may lack.
have_haproxy() {
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]
}

if ! have_cmocka; then
    # as root, or with sudo; otherwise it says what to run as root
    # shellcheck disable=SC2046 # no word, or one
    scripts/need-packages.sh scripts/test.sh libcmocka-dev pkg-config $(have_haproxy || echo haproxy)
fi
# TLS (tls:// listeners): OpenSSL's development files build it in, and the
# TLS tests use the openssl tool and Python's ssl module as clients.
have_tls_tools() {
    [ -f /usr/include/openssl/ssl.h ] && command -v openssl >/dev/null 2>&1 &&
        command -v python3 >/dev/null 2>&1
}
if ! have_tls_tools; then
    scripts/need-packages.sh scripts/test.sh libssl-dev openssl python3 ||
        echo "scripts/test.sh: going on without OpenSSL; the TLS tests will fail" >&2
fi
if ! have_haproxy; then
    # Only tests/examples/test_haproxy needs it: without it the suite still
    # runs, and that test fails saying what to install.
    scripts/need-packages.sh scripts/test.sh haproxy ||
        echo "scripts/test.sh: going on without haproxy; test_haproxy will fail" >&2
fi

if ! [ -x /usr/bin/systemd-socket-activate ]; then
    # Only tests/examples/test_socket_activation needs it (issue 16).
    scripts/need-packages.sh scripts/test.sh systemd ||
        echo "scripts/test.sh: going on without systemd-socket-activate; test_socket_activation will fail" >&2
fi

sanitize="${SS_SANITIZE:-}"
# no comma in the directory name: it would split the linker's -Wl,-rpath
build="build${sanitize:+-${sanitize//,/-}}"
jobs="$(nproc 2>/dev/null || echo 2)"
# RelWithDebInfo: -O2 finds warnings (maybe-uninitialized, truncation)
# that an unoptimized build never sees, and tests run the code users run.
# TLS is tested whenever OpenSSL is there (installed above): ON, so that
# a build that cannot find it fails here rather than skip the TLS tests.
tls=AUTO
have_tls_tools && tls=ON
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSS_BUILD_TESTS=ON -DSS_WERROR=ON \
      -DSS_SANITIZE="$sanitize" -DSS_TLS="$tls" >/dev/null
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
