#!/bin/sh
# Keeps the docs true to the code, in two checks.
#
# 1. The C in the docs compiles: every ```c block of a checked page must
# be preceded by a line
#     <!-- snippet: PATH NAME -->
# and must equal the region of PATH (relative to the repository) between
#     /* docs:begin NAME */   and   /* docs:end NAME */
# with the marker lines of other regions left out. PATH is a source the
# build compiles (examples/, docs/snippets/), so a block that no longer
# compiles, or no longer matches the code, fails this check.
# Checked pages: README.md, docs/tutorial.md and docs/python-to-c.md always, and any
# other docs/*.md that uses a snippet marker (a page opts in with its first
# marker; pages without one only get a note).
#
# 2. What the docs tell a reader to run or open exists, from the
# repository root (scripts/docs-commands.awk lists it), on every page:
#   - each path in inline code (`examples/cli.c`) and each relative link;
#   - each command line of a ```sh block, a "$ " line of a ```text block,
#     and inline code that starts with a path: its program is a path that
#     exists (build/... in the build tree given with --build-dir) or a
#     well-known tool; a bare example name (`echo_server`) is an error,
#     since no such command exists until you say build/examples/echo_server.
#     A program of the build tree is run with the same arguments plus
#     --help, which must exit 0: its options and their values parse.
#
#   scripts/check-docs.sh [--build-dir DIR]   check (ctest runs this); without
#       --build-dir, build/... paths and programs are skipped (a note counts them)
#   scripts/check-docs.sh --pages 'A.md ...'  part 2 on other pages (its test)
#   scripts/check-docs.sh --update            rewrite the C blocks from the sources
set -eu
cd "$(dirname "$0")/.."
update=0
build_dir=""
pages="" # part 2 only: these pages instead of README.md docs/*.md (tests)
while [ $# -gt 0 ]; do
    case "$1" in
    --update) update=1 ;;
    --build-dir) build_dir="${2:?--build-dir needs a directory}" && shift ;;
    --pages) pages="$2" && shift ;;
    *) echo "usage: $0 [--update] [--build-dir DIR] [--pages 'PAGE...']" >&2 && exit 2 ;;
    esac
    shift
done
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
[ "$update" = 1 ] && exit "$status"
[ "$status" = 0 ] && echo "docs: every C block matches its source"

# ---- 2. paths and commands ----

# Tools a reader is expected to have (or to install as the docs say).
known_tools=" cmake ctest cc gcc clang make git python3 nc socat sudo apt-get pkg-config ldconfig kill echo grep haproxy systemctl systemd-socket-activate openssl "
skipped_build=0

complain() {
    echo "$1: $2" >&2
    status=1
}

# Where a path written in the docs is: build/... in the build tree.
locate() {
    case "$1" in
    build/*) printf '%s\n' "$build_dir/${1#build/}" ;;
    *) printf '%s\n' "$1" ;;
    esac
}

# $1 path as written (./ allowed), $2 where it was written.
check_path() {
    p="${1#./}"
    case "$p" in
    build/*)
        if [ -z "$build_dir" ]; then
            skipped_build=$((skipped_build + 1))
            return 0
        fi
        ;;
    esac
    [ -e "$(locate "$p")" ] || complain "$2" "'$1' does not exist (paths are from the repository root)"
}

# A program of the build tree, run with the documented arguments + --help.
check_build_program() {
    where="$1"
    program="$(locate "${2#./}")"
    shift 2
    if ! timeout 10 "$program" "$@" --help >/dev/null 2>&1; then
        complain "$where" "'${program##*/} $* --help' does not exit 0: check the command"
    fi
}

# One simple command: $1 where, $2 the names that -o creates on its line,
# then its words.
check_simple_command() {
    where="$1"
    outputs="$2"
    shift 2
    while [ $# -gt 0 ]; do # VAR=value prefixes and sudo run the next word
        case "$1" in
        *=* | sudo) shift ;;
        *) break ;;
        esac
    done
    [ $# -gt 0 ] || return 0
    word="$1"
    case "$word" in
    ./*) case " $outputs " in *" ${word#./} "*) return 0 ;; esac ;; # built just before
    esac
    case "$word" in
    */*)
        check_path "$word" "$where"
        # An if, not "[ ... ] && ...": a false test as the function's last
        # command would be its status, and set -e would end the script.
        case "${word#./}" in
        build/examples/*)
            if [ -n "$build_dir" ] && [ -e "$(locate "${word#./}")" ]; then
                check_build_program "$where" "$@"
            fi
            ;;
        esac
        ;;
    *)
        if [ -n "$build_dir" ] && [ -x "$build_dir/examples/$word" ]; then
            complain "$where" "'$word' is not a command: write build/examples/$word"
        elif [ -n "${known_tools##* "$word" *}" ]; then
            complain "$where" "'$word': not a path nor a known tool (scripts/check-docs.sh)"
        fi
        ;;
    esac
}

# A command line: split at && || ; | into simple commands.
check_command() {
    outputs="$(printf '%s\n' "$2" | tr ' ' '\n' | sed -n '/^-o$/{n;p;}' | tr '\n' ' ')"
    printf '%s\n' "$2" | sed 's/&&/\n/g; s/||/\n/g; s/;/\n/g; s/|/\n/g' >"$tmp/simple"
    while IFS= read -r simple; do
        set -f
        # shellcheck disable=SC2086 # split into words on purpose
        check_simple_command "$1" "$outputs" $simple
        set +f
    done <"$tmp/simple"
}

check_link() {
    target="${2%%#*}"
    [ -n "$target" ] || return 0
    dir="$(dirname "${1%%:*}")"
    [ -e "$dir/$target" ] || complain "$1" "link to '$2': no such file"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for md in ${pages:-README.md docs/*.md}; do
    awk -f scripts/docs-commands.awk "$md"
done >"$tmp/records"
while IFS="$(printf '\t')" read -r kind where text; do
    case "$kind" in
    path) check_path "$text" "$where" ;;
    cmd) check_command "$where" "$text" ;;
    link) check_link "$where" "$text" ;;
    esac
done <"$tmp/records"
[ "$skipped_build" = 0 ] ||
    echo "note: $skipped_build build/ path(s) not checked: give --build-dir DIR"
[ "$status" = 0 ] && echo "docs: every path, link and command exists"
exit "$status"
