#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages invited builds, tests and demos with.
# Skips apt when everything is there already. Used by demo.sh, test.sh and CI.
# --ci adds what CI's extra stages need: valgrind, and clang with its
# libFuzzer/sanitizer runtimes for the fuzz build (docs/reliability.md).
set -eu

PACKAGES="build-essential meson ninja-build pkg-config python3 curl sqlite3 util-linux
libuv1-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libinih-dev
libsystemd-dev libmicrohttpd-dev libssl-dev libnghttp2-dev scdoc openssl
man-db groff-base tmux prometheus bash-completion
tinyproxy nghttp2-proxy
python3-aiosmtpd
debhelper dpkg-dev lintian systemd"
if [ "${1:-}" = "--ci" ]; then
	PACKAGES="$PACKAGES valgrind clang libclang-rt-14-dev"
fi

missing=
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	SUDO=
else
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
