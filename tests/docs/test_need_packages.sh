#!/bin/sh
# scripts/need-packages.sh, run as a user without root and without sudo,
# must say what to run as root (with --no-install-recommends) and exit 1,
# never fail with "sudo: command not found". A PATH of our own holds only
# a fake `id` that says uid 1000, so no sudo or apt-get can be found.
set -eu
here="$(cd "$(dirname "$0")/../.." && pwd)"
fake="$(mktemp -d)"
trap 'rm -rf "$fake"' EXIT
printf '#!/bin/sh\necho 1000\n' >"$fake/id"
chmod +x "$fake/id"
status=0
PATH="$fake" /bin/sh "$here/scripts/need-packages.sh" scripts/test.sh libcmocka-dev pkg-config \
    >"$fake/out" 2>&1 || status=$?
fail() {
    echo "need-packages: $1; it said:" >&2
    cat "$fake/out" >&2
    exit 1
}
[ "$status" = 1 ] || fail "exit status $status, want 1"
grep -q 'apt-get install -y --no-install-recommends libcmocka-dev pkg-config' "$fake/out" ||
    fail "no install command to run as root"
grep -q 'as root' "$fake/out" || fail "does not say it needs root"
! grep -q 'not found' "$fake/out" || fail "a command was not found"
echo "need-packages: without root or sudo it says what to run"
