#!/usr/bin/env bash
# Regenerates tests/fixtures/reference_vectors/vectors.json from Zama's reference crates.
#
#   tools/reference-vectors/generate.sh [--quick] [--derive-twice] [--operands FILE] [--out FILE]
#
# (paths relative to the current directory; see README.md)
#
# setup.sh makes the reference checkout, the `reference` symlink and protoc available and sets
# the build environment; then this builds the tool (SQLX_OFFLINE, the reference's own Cargo.lock
# versions) and runs it.
set -euo pipefail

# shellcheck source=setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

start=$(date +%s)
(cd "$here" && cargo build --release --locked -j "$jobs" --bin reference-vectors)
echo "build: $(( $(date +%s) - start ))s"

start=$(date +%s)
"$CARGO_TARGET_DIR/release/reference-vectors" --repo "$repo" "$@"
echo "run: $(( $(date +%s) - start ))s"
