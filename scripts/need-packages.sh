#!/bin/sh
# Installs Debian packages that a script needs, the way a user would:
#     scripts/need-packages.sh WHO PACKAGE...
# As root it runs apt-get; otherwise it uses sudo when there is one; a user
# without either is told exactly what to run (exit 1), instead of seeing
# "sudo: command not found". --no-install-recommends: only what is needed.
set -eu
who="$1"
shift
packages="$*"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    {
        echo "$who: needs the Debian packages $packages, and installing them needs root."
        echo "Run, as root:"
        echo "    apt-get update && apt-get install -y --no-install-recommends $packages"
        echo "then run $who again (or run $who itself as root)."
    } >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$who: needs $packages (Debian names); install them with your package manager" >&2
    exit 1
fi
echo "$who: installing $packages with apt-get"
$sudo apt-get update -qq
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
