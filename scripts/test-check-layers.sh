#!/bin/sh
# scripts/check-layers.sh must catch what it exists for: built here from
# three tiny sources in a scratch tree, an arrow up a layer (base calling
# core) and a cycle inside one layer each fail it, and a clean graph
# passes it.
set -eu
check="$(cd "$(dirname "$0")" && pwd)/check-layers.sh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cc="${CC:-cc}"

# object NAME SOURCE: compiles SOURCE as src/NAME in the scratch tree
object() {
    mkdir -p "$tmp/src/$(dirname "$1")" "$tmp/build/socketserver.dir/src/$(dirname "$1")"
    printf '%s\n' "$2" >"$tmp/src/$1"
    "$cc" -c "$tmp/src/$1" -o "$tmp/build/socketserver.dir/src/$1.o"
}
says() { # says LINE-PATTERN: the last check printed such a line
    grep -q "$1" "$tmp/out" || { echo "check-layers output lacks '$1':" >&2; cat "$tmp/out" >&2; exit 1; }
}
expect() { # expect pass|fail WHAT
    if SS_LAYERS_SRC="$tmp/src" sh "$check" "$tmp/build" >"$tmp/out" 2>&1; then got=pass; else got=fail; fi
    if [ "$got" != "$1" ]; then
        echo "check-layers should $1 on $2, but did $got:" >&2
        cat "$tmp/out" >&2
        exit 1
    fi
}

object base/clock.c 'int clock_now(void) { return 1; }'
object core/server.c 'int clock_now(void); int serve(void) { return clock_now(); }'
expect pass "core calling base"
object base/log.c 'int serve(void); int log_it(void) { return serve(); }'
expect fail "base calling core"
says '^upward: base/log.c -> core/server.c'
object base/log.c 'int log_it(void) { return 0; }'
object core/request.c 'int serve(void); int request_end(void) { return serve(); }'
object core/server.c 'int request_end(void); int serve(void) { return request_end(); }'
expect fail "a cycle in core"
says '^cycle:'
object core/request.c 'int request_end(void) { return 0; }'
expect pass "a clean graph again"
mkdir -p "$tmp/src/core" "$tmp/src/filter" "$tmp/src/io" # headers the includes below name
: >"$tmp/src/core/core.h"
: >"$tmp/src/filter/proxy_header.h"
: >"$tmp/src/io/io.h"
printf '#include "core/core.h"\n' >"$tmp/src/base/include_up.h"
expect fail "base including a core header"
says '^include up: base/include_up.h includes core/core.h'
rm "$tmp/src/base/include_up.h"
mkdir -p "$tmp/src/transport"
printf '#include "../core/core.h"\n' >"$tmp/src/transport/sneaky.h"
expect fail "a relative include of a higher layer"
says '^include up: transport/sneaky.h includes core/core.h'
rm "$tmp/src/transport/sneaky.h"
printf '#include "filter/proxy_header.h"\n' >"$tmp/src/objects.h"
expect fail "objects.h including a layer above transport"
says '^include up: objects.h includes filter/proxy_header.h'
printf '#include "io/io.h"\n' >"$tmp/src/objects.h"
expect pass "objects.h including a lower layer"
echo "check-layers: fails on an arrow up, a cycle and an include up (relative, or from objects.h); passes a clean graph"
