#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install what building and testing libnsa needs on Debian / Ubuntu, if anything is missing.
# Needs root only when something is missing; does nothing when all is present.
#   scripts/setup-debian.sh            install what is missing (as root)
#   scripts/setup-debian.sh --check    only report what is missing (exit 1 if anything is)
set -eu

PACKAGES="cmake ninja-build pkg-config libopenblas-dev libcmocka-dev gcc g++ clang"

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup-debian.sh: this is not a Debian-like system (no dpkg-query); install by hand:" >&2
    echo "  $PACKAGES" >&2
    exit 1
fi

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing="$missing $pkg"
    fi
done
missing=${missing# }

if [ -z "$missing" ]; then
    echo "setup-debian.sh: all build dependencies are installed"
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "setup-debian.sh: missing: $missing" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-debian.sh: missing packages: $missing" >&2
    echo "setup-debian.sh: installing them needs root. Run" >&2
    echo "    sudo $0" >&2
    echo "or, as root: apt-get install $missing" >&2
    echo "then run the command again." >&2
    exit 1
fi

echo "setup-debian.sh: installing: $missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -q --no-install-recommends $missing
echo "setup-debian.sh: done"
