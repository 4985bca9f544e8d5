#!/usr/bin/env bash
# Installs the library as README.md says and builds a consumer against it
# both documented ways, CMake's find_package and pkg-config, then runs each
# with only what a user sets: LD_LIBRARY_PATH is never used.
#  1. Into a temporary prefix. The find_package consumer runs as built
#     (CMake records the library's directory in its RUNPATH). The
#     pkg-config consumer, linked with -L only, must fail to start with
#     "cannot open shared object file" (what README.md warns of), and
#     linked with the documented -Wl,-rpath must start. Every area header
#     of include/socketserver/ is installed and compiles on its own.
#  2. As root on a machine whose /usr/local holds no libsocketserver (a
#     fresh machine, CI): README.md's own steps, `cmake --install build
#     --prefix /usr/local` and `ldconfig`, then the pkg-config consumer
#     built exactly as README.md shows; what was installed is removed
#     afterwards (and ldconfig run again).
# pkg-config is installed when missing (scripts/need-packages.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
unset LD_LIBRARY_PATH
command -v pkg-config >/dev/null 2>&1 ||
    scripts/need-packages.sh scripts/check-install.sh pkg-config
tmp="$(mktemp -d)"
installed=""
cleanup() {
    if [ -n "$installed" ]; then # part 2's files, then the loader's cache
        xargs -d '\n' rm -f <"$installed"
        # and the directories it made, now empty; never one that was there
        for _ in 1 2 3 4; do # a parent is empty once its child is gone
            find /usr/local -depth -type d -empty | grep -vxF -f "$tmp/dirs-before" |
                xargs -d '\n' -r rmdir 2>/dev/null || true
        done
        ldconfig
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
jobs="$(nproc 2>/dev/null || echo 2)"

# Builds the library in $tmp/build-NAME, configured for the default
# prefix, and installs it into `prefix` with `cmake --install --prefix`,
# as README.md says: the installed files (socketserver.pc above all) must
# hold no path of the configure-time prefix.
install_into() {
    cmake -S . -B "$tmp/build-$1" -DSS_BUILD_TESTS=OFF -DSS_BUILD_EXAMPLES=OFF >/dev/null
    cmake --build "$tmp/build-$1" -j "$jobs" >/dev/null
    cmake --install "$tmp/build-$1" --prefix "$2" >/dev/null
}

# ---- 1. a temporary prefix ----
prefix="$tmp/prefix"
install_into temp "$prefix"
cmake -S tests/install -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/consumer"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib64/pkgconfig"
libdir="$(pkg-config --variable=libdir socketserver)"
# shellcheck disable=SC2046 # pkg-config's words are separate arguments
cc -Wall -Werror tests/install/consumer.c $(pkg-config --cflags --libs socketserver) \
   -o "$tmp/consumer-pc"
if ! ldconfig -p | grep -q 'libsocketserver\.so'; then
    if "$tmp/consumer-pc" >/dev/null 2>"$tmp/err"; then
        echo "check-install: a consumer linked with -L only started: README's note is wrong" >&2
        exit 1
    fi
    grep -q 'libsocketserver.so.*cannot open shared object file' "$tmp/err" || {
        echo "check-install: unexpected failure:" >&2
        cat "$tmp/err" >&2
        exit 1
    }
fi
# The .pc file says whether TLS is in (the consumer checks the library
# agrees), and a static link with it needs OpenSSL's libraries.
tls="$(pkg-config --variable=tls socketserver)"
case "$tls" in
yes) expects_tls=1
     pkg-config --static --libs socketserver | grep -q -- '-lssl' || {
         echo "check-install: TLS is in, but pkg-config --static --libs lacks OpenSSL" >&2
         exit 1
     } ;;
no) expects_tls=0 ;;
*) echo "check-install: socketserver.pc has no tls=yes|no variable ('$tls')" >&2; exit 1 ;;
esac
# shellcheck disable=SC2046
cc -Wall -Werror -DCONSUMER_EXPECTS_TLS="$expects_tls" tests/install/consumer.c \
   $(pkg-config --cflags --libs socketserver) -Wl,-rpath,"$libdir" -o "$tmp/consumer-rpath"
"$tmp/consumer-rpath"
# Every area header is installed, and compiles on its own from there.
includedir="$(pkg-config --variable=includedir socketserver)"
(cd include/socketserver && ls) >"$tmp/headers-source"
(cd "$includedir/socketserver" && ls) >"$tmp/headers-installed"
diff "$tmp/headers-source" "$tmp/headers-installed" >&2 || {
    echo "check-install: the installed area headers differ from include/socketserver/" >&2
    exit 1
}
while read -r header; do
    printf '#include <socketserver/%s>\n' "$header" >"$tmp/alone.c"
    cc -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$includedir" -c "$tmp/alone.c" -o "$tmp/alone.o"
done <"$tmp/headers-source"
unset PKG_CONFIG_PATH
echo "check-install: temporary prefix: find_package, and pkg-config with -Wl,-rpath, both run (TLS: $tls)"

# ---- 2. /usr/local, as README.md says ----
if [ "$(id -u)" -ne 0 ]; then
    echo "check-install: not root: the /usr/local + ldconfig steps are not checked"
    exit 0
fi
if ls /usr/local/lib*/libsocketserver* /usr/local/lib/*/libsocketserver* >/dev/null 2>&1 ||
        [ -e /usr/local/include/socketserver.h ]; then
    echo "check-install: /usr/local already holds libsocketserver: left alone, not checked"
    exit 0
fi
exec 9>/tmp/socketserver-check-install.lock
flock 9 # one check at a time touches /usr/local
find /usr/local -type d >"$tmp/dirs-before"
install_into system /usr/local
installed="$tmp/build-system/install_manifest.txt"
ldconfig
# shellcheck disable=SC2046
cc tests/install/consumer.c $(pkg-config --cflags --libs socketserver) -o "$tmp/myserver"
"$tmp/myserver"
echo "check-install: /usr/local + ldconfig: the pkg-config consumer runs as README.md says"
