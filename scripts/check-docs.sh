#!/bin/sh
# Keeps the C in the docs compiled: every ```c block of a checked page must
# be preceded by a line
#     <!-- snippet: PATH NAME -->
# and must equal the region of PATH (relative to the repository) between
#     /* docs:begin NAME */   and   /* docs:end NAME */
# with the marker lines of other regions left out. PATH is a source the
# build compiles (examples/, docs/snippets/), so a block that no longer
# compiles, or no longer matches the code, fails this check.
#
# Checked pages: README.md, docs/tutorial.md and docs/python-to-c.md always, and any
# other docs/*.md that uses a snippet marker (a page opts in with its first
# marker; pages without one only get a note).
#
#   scripts/check-docs.sh            check (ctest runs this)
#   scripts/check-docs.sh --update   rewrite the blocks from the sources
set -eu
cd "$(dirname "$0")/.."
update=0
[ "${1:-}" = "--update" ] && update=1
status=0
for md in README.md docs/tutorial.md docs/python-to-c.md; do
    [ -f "$md" ] || { echo "$md is missing" >&2; status=1; }
done
for md in README.md docs/*.md; do
    case "$md" in
    README.md | docs/tutorial.md | docs/python-to-c.md) ;;
    *)
        if ! grep -q '^<!-- snippet: ' "$md"; then
            blocks="$(grep -c '^```c$' "$md" || true)"
            [ "$blocks" = 0 ] || echo "note: $md: $blocks C block(s) not checked (no snippet markers)"
            continue
        fi
        ;;
    esac
    out="$(mktemp)"
    if ! awk -v update="$update" -v md="$md" -f scripts/docs-snippets.awk "$md" >"$out"; then
        status=1
    elif [ "$update" = 1 ] && ! cmp -s "$out" "$md"; then
        cp "$out" "$md"
        echo "updated $md"
    fi
    rm -f "$out"
done
[ "$status" = 0 ] && [ "$update" = 0 ] && echo "docs: every C block matches its source"
exit "$status"
