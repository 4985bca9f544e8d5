#!/usr/bin/env bash
# Installs the library into a temporary prefix and builds a consumer against
# it twice: with CMake's find_package and with pkg-config.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cmake -S . -B "$tmp/build" -DSS_BUILD_TESTS=OFF -DSS_BUILD_EXAMPLES=OFF \
      -DCMAKE_INSTALL_PREFIX="$tmp/prefix" >/dev/null
cmake --build "$tmp/build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
cmake --install "$tmp/build" >/dev/null

cmake -S tests/install -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64" "$tmp/consumer/consumer"

export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib64/pkgconfig"
cc -Wall -Werror tests/install/consumer.c $(pkg-config --cflags --libs socketserver) \
   -o "$tmp/consumer-pc"
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64" "$tmp/consumer-pc"
echo "check-install: find_package and pkg-config consumers both work"
