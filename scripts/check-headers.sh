#!/bin/sh
# Keeps the public headers in their shape (ctest: public_headers):
#  1. include/socketserver.h is the umbrella: it declares nothing itself and
#     includes every area header under include/socketserver/, and only those.
#  2. Each area header names its guide ("Guide: docs/PAGE.md"), the page
#     exists, and it links back to the header (../include/socketserver/X.h).
#  3. Every SS_API declaration is documented: a comment right above it, or
#     above the run of declarations it belongs to (no blank line between).
#  4. server.h's list of every server option names each ss_server_set_* and
#     ss_server_on_* exactly once, under the header that declares it.
# That each header compiles on its own is checked by the build
# (cmake/PublicHeaders.cmake).
set -eu
cd "$(dirname "$0")/.."
status=0
fail() {
    echo "check-headers: $*" >&2
    status=1
}
umbrella=include/socketserver.h
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---- 1. the umbrella ----
grep -q '^SS_API' "$umbrella" && fail "$umbrella declares functions: move them to an area header"
sed -n 's|^#include <\(socketserver/[a-z_]*\.h\)>$|include/\1|p' "$umbrella" | sort >"$tmp/included"
ls include/socketserver/*.h | sort >"$tmp/present"
comm -13 "$tmp/included" "$tmp/present" | while read -r h; do
    echo "check-headers: $h is not included by $umbrella" >&2
done
comm -23 "$tmp/included" "$tmp/present" | while read -r h; do
    echo "check-headers: $umbrella includes $h, which does not exist" >&2
done
cmp -s "$tmp/included" "$tmp/present" || status=1

# ---- 2. each area header and its guide ----
for h in include/socketserver/*.h; do
    page="$(tr '\n' ' ' <"$h" | sed -n 's|.*Guide: *\*\{0,1\} *\(docs/[a-z0-9_-]*\.md\).*|\1|p')"
    if [ -z "$page" ]; then
        fail "$h: no 'Guide: docs/PAGE.md' in its opening comment"
    elif [ ! -f "$page" ]; then
        fail "$h: its guide $page does not exist"
    elif ! grep -q "](\.\./$h)" "$page"; then
        fail "$page: no link to its header (../$h)"
    fi
done

# ---- 3. every SS_API declaration documented ----
for h in include/socketserver/*.h; do
    awk -v file="$h" '
        /^[ \t]*$/ { documented = 0; next }       # a blank line ends a run
        /\*\/[ \t]*$/ { documented = 1; next }     # a comment (or a commented field) ends here
        /^SS_API/ && !documented {
            printf "check-headers: %s:%d: not documented: %s\n", file, FNR, $0 > "/dev/stderr"
            bad = 1
        }
        END { exit bad }' "$h" || status=1
done

# ---- 4. the list of every server option ----
# Declared: "NAME HEADER" for each setter and hook of the server.
for h in include/socketserver/*.h; do
    sed -n 's/^SS_API [a-z]* \(ss_server_\(set\|on\)_[a-z_]*\)(.*/\1/p' "$h" |
        sed "s|\$| ${h##*/}|"
done | sort >"$tmp/declared"
# Listed: the names of each group of the list take the header that ends it.
awk '
    /Every option of a server, by when it may be set/ { inlist = 1 }
    inlist && /^ \*\/$/ { exit }
    inlist {
        n = split($0, words, /[ ,()]+/)
        for (i = 1; i <= n; i++)
            if (words[i] ~ /^ss_server_(set|on)_[a-z_]+$/)
                pending[++count] = words[i]
        if (match($0, /[a-z_]+\.h$/)) {
            header = substr($0, RSTART, RLENGTH)
            for (i = 1; i <= count; i++)
                print pending[i], header
            count = 0
        }
    }' include/socketserver/server.h | sort >"$tmp/listed"
if ! cmp -s "$tmp/declared" "$tmp/listed"; then
    fail "server.h's list of every option differs from the declarations (< declared, > listed):"
    diff "$tmp/declared" "$tmp/listed" | grep '^[<>]' >&2 || true
fi

[ "$status" = 0 ] && echo "headers: umbrella, guides, docstrings and the option list agree"
exit "$status"
