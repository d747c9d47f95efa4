#!/usr/bin/env bash
# Builds reference-bench (see README.md) and prints its path on the last line of stdout.
#
#   tools/reference-vectors/build-bench.sh        # JOBS=<n> for more than 2 parallel jobs
#
# setup.sh makes the reference checkout, the `reference` symlink and protoc available and sets
# the build environment (the same as generate.sh's); cargo's output goes to stderr.
set -euo pipefail

# shellcheck source=setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

start=$(date +%s)
(cd "$here" && cargo build --release --locked -j "$jobs" --bin reference-bench) >&2
echo "build: $(( $(date +%s) - start ))s" >&2
echo "$CARGO_TARGET_DIR/release/reference-bench"
