#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what is missing, build, run the test suite (unit + integration).
# Extra arguments go to `meson test` (e.g. --suite unit).
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec meson test -C "${BUILD_DIR:-build}" --print-errorlogs "$@"
