#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the Debian package: `scripts/package.sh [OUTDIR]` (default build-deb/).
# Builds in a copy of the source tree (the tracked and untracked, not ignored
# files; the tree itself stays clean) with `dpkg-buildpackage -us -uc -b`,
# moves the .debs (invited and its -dbgsym), .buildinfo and .changes to
# OUTDIR and prints the path of invited's .deb on standard output (the
# build's log goes to standard error).
# Needs the Build-Depends of debian/control: `scripts/deps.sh` installs them.
# DEB_BUILD_OPTIONS=nocheck skips the unit tests the build runs.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in dpkg-buildpackage dh; do
	if ! command -v "$tool" >/dev/null; then
		echo "package.sh: $tool is missing (scripts/deps.sh installs it)" >&2
		exit 1
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/invited-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/invited"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# what git knows of and does not ignore; build dirs and editors' files stay out
	# (deleted files are still in the index: only those that exist)
	# shellcheck disable=SC2016
	git -C "$root" ls-files -z --cached --others --exclude-standard |
		(cd "$root" && xargs -0 sh -c 'for f; do if [ -e "$f" ]; then printf "%s\n" "$f"; fi; done' sh) |
		tar -C "$root" -cf - --no-recursion -T - | tar -C "$work/invited" -xf -
else
	tar -C "$root" -cf - --exclude=./.git --exclude='./build*' --exclude='./obj-*' \
		--exclude=./debian/invited --exclude=./debian/.debhelper . |
		tar -C "$work/invited" -xf -
fi

start=$(date +%s)
(cd "$work/invited" && dpkg-buildpackage -us -uc -b -Jauto) >&2
echo "package.sh: built in $(($(date +%s) - start)) s" >&2

deb=
for f in "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes; do
	[ -e "$f" ] || continue
	rm -f "$out/$(basename "$f")"
	mv "$f" "$out/"
	case $(basename "$f") in invited_*.deb) deb="$out/$(basename "$f")" ;; esac
done
if [ -z "$deb" ]; then
	echo "package.sh: dpkg-buildpackage made no .deb" >&2
	exit 1
fi
printf '%s\n' "$deb"
