#!/bin/sh
# The library's layers, checked on the built objects (docs/internals.md).
#
#   scripts/check-layers.sh BUILD_DIR
#
# Each source file lives in a layer folder of src/; the layers, lowest
# first, are base, sched, io, transport, filter, dispatch, core, api. A file may
# call only functions of its own layer or of lower ones. The file-level
# graph is read from the objects the build made: file A depends on file B
# when a symbol A leaves undefined is one B defines (nm). Struct layouts in
# headers are a data contract, not an arrow: only calls and shared
# variables count.
#
# The headers keep the same order: a file in a layer folder includes only
# its own layer's headers and lower ones ("objects.h", the server and
# request layouts, from the transport layer up); "internal.h", which
# includes everything, is for code outside src/ (fuzz targets, unit tests).
#
# Fails (exit 1) on any arrow up a layer, any cycle between files, or any
# include of a higher layer's header, printing each; prints the graph's
# size when all is well.
set -eu
build="${1:?usage: scripts/check-layers.sh BUILD_DIR}"
layers="base sched io transport filter dispatch core api"

src="${SS_LAYERS_SRC:-$(cd "$(dirname "$0")/../src" && pwd)}" # the sources the objects are of
# Objects of today's sources only: a build dir may keep objects of files
# since moved or removed.
objects="$(find "$build" -path '*socketserver.dir/src/*' -name '*.c.o' | sort |
    while read -r o; do
        f="$(echo "$o" | sed 's|.*socketserver\.dir/src/||; s|\.o$||')"
        if [ -f "$src/$f" ]; then echo "$o"; fi
    done)"
if [ -z "$objects" ]; then
    echo "check-layers: no library objects under $build (build it first)" >&2
    exit 1
fi

# One line per symbol: "D file sym" (defined) or "U file sym" (used), where
# file is the source path below src/, e.g. core/server.c.
symbols() {
    for o in $objects; do
        file="$(echo "$o" | sed 's|.*socketserver\.dir/src/||; s|\.o$||')"
        nm --defined-only -g "$o" | awk -v f="$file" 'NF == 3 { print "D", f, $3 }'
        nm -u "$o" | awk -v f="$file" '{ print "U", f, $NF }'
    done
}

# An include of a higher layer's header (or of internal.h) from src/.
includes_up() {
    grep -n '^#include "' "$src"/*/*.c "$src"/*/*.h 2>/dev/null |
        sed "s|^$src/||" | awk -v layers="$layers" '
        BEGIN { n = split(layers, order, " "); for (i = 1; i <= n; i++) rank[order[i]] = i }
        {
            split($0, at, ":"); file = at[1]; split(file, part, "/")
            match($0, /"[^"]*"/); header = substr($0, RSTART + 1, RLENGTH - 2)
            split(header, hpart, "/")
            if (header == "internal.h") bad = 1
            else if (header == "objects.h") bad = rank[part[1]] < rank["transport"]
            else bad = (hpart[1] in rank) && rank[hpart[1]] > rank[part[1]]
            if (bad) print "include up: " file " includes " header
        }'
}
up="$(includes_up)"
if [ -n "$up" ]; then
    echo "$up"
    echo "$(echo "$up" | wc -l) include(s) of a higher layer's header"
    exit 1
fi

symbols | awk -v layers="$layers" '
function layer_of(file) { split(file, part, "/"); return part[1] }
function visit(v,    i, w) {            # Tarjan: strongly connected components
    index_of[v] = low[v] = ++counter
    stack[++top] = v; on_stack[v] = 1
    for (i = 1; i <= nout[v]; i++) {
        w = out[v, i]
        if (!(w in index_of)) { visit(w); if (low[w] < low[v]) low[v] = low[w] }
        else if (on_stack[w] && index_of[w] < low[v]) low[v] = index_of[w]
    }
    if (low[v] == index_of[v]) {
        members = ""; size = 0
        do { w = stack[top--]; on_stack[w] = 0; members = members " " w; size++ } while (w != v)
        if (size > 1) { print "cycle:" members; bad++ }
    }
}
BEGIN { n = split(layers, order, " "); for (i = 1; i <= n; i++) rank[order[i]] = i }
$1 == "D" { owner[$3] = $2; files[$2] = 1; next }
$1 == "U" { used[++nused] = $2 " " $3; files[$2] = 1 }
END {
    for (i = 1; i <= nused; i++) {
        split(used[i], u, " ")
        from = u[1]; to = owner[u[2]]
        if (to == "" || to == from || ((from, to) in edge)) continue
        edge[from, to] = 1; out[from, ++nout[from]] = to; nedges++
        if (!(layer_of(from) in rank) || !(layer_of(to) in rank)) {
            print "unknown layer: " from " -> " to; bad++
        } else if (rank[layer_of(to)] > rank[layer_of(from)]) {
            print "upward: " from " -> " to " (" u[2] ")"; bad++
        }
    }
    for (f in files) if (!(f in index_of)) visit(f)
    if (bad) { print bad " layering fault(s)"; exit 1 }
    nfiles = 0; for (f in files) nfiles++
    print "layers ok: " nfiles " files, " nedges " arrows, all down, no cycle"
}'
