#!/bin/sh
# scripts/check-docs.sh must catch each kind of wrong instruction a page
# can give: a path that is not there from the repository root, a bare
# example name used as a command, an option the program refuses, a dead
# link, an unknown tool; and pass a page that gets them right, with or
# without a build tree (without one it says what it skipped).
#     tests/docs/test_check_docs.sh BUILD_DIR
set -eu
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() {
    echo "check-docs: $1" >&2
    cat "$tmp/out" >&2
    exit 1
}
cat >"$tmp/bad.md" <<'PAGE'
Run `examples/echo_server` (not built there), see [the guide](nowhere.md).

```sh
echo_server --listen tcp://127.0.0.1:0
build/examples/echo_server --mode nonsense
frobnicate --now
```
PAGE
cat >"$tmp/good.md" <<'PAGE'
Read `examples/cli.c`, then run `build/examples/echo_server --mode pool --workers 2`.

```sh
cmake -S . -B build && cmake --build build -j && build/examples/uppercase_server --quiet
cc x.c -o myprog && ./myprog
```
PAGE
if sh "$here/scripts/check-docs.sh" --build-dir "$build" --pages "$tmp/bad.md" >"$tmp/out" 2>&1; then
    fail "a page full of mistakes passed"
fi
for want in "bad.md:1: 'examples/echo_server' does not exist" \
        "bad.md:1: link to 'nowhere.md': no such file" \
        "bad.md:4: 'echo_server' is not a command: write build/examples/echo_server" \
        "bad.md:5: 'echo_server --mode nonsense --help' does not exit 0" \
        "bad.md:6: 'frobnicate': not a path nor a known tool"; do
    grep -qF "$want" "$tmp/out" || fail "no '$want'"
done
sh "$here/scripts/check-docs.sh" --build-dir "$build" --pages "$tmp/good.md" >"$tmp/out" 2>&1 ||
    fail "a correct page failed"
# Run bare, as README and the tutorial show it: what needs the build tree
# is skipped, and said to be, not a silent exit 1.
sh "$here/scripts/check-docs.sh" --pages "$tmp/good.md" >"$tmp/out" 2>&1 ||
    fail "without --build-dir, a correct page failed"
grep -qF "build/ path(s) not checked: give --build-dir DIR" "$tmp/out" ||
    fail "without --build-dir, no note of what was skipped"
sh "$here/scripts/check-docs.sh" >"$tmp/out" 2>&1 || fail "run bare on the repository, it failed"
grep -qF "docs: every path, link and command exists" "$tmp/out" || fail "run bare, no verdict"
echo "check-docs: catches each kind of wrong instruction"
