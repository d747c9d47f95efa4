#!/usr/bin/env bash
# Regenerates tests/fixtures/reference_vectors/vectors.json from Zama's reference crates.
#
#   tools/reference-vectors/generate.sh [--quick] [--derive-twice] [--operands FILE] [--out FILE]
#
# (paths relative to the current directory; see README.md)
#
# 1. extracts coprocessor/ of zama-ai/fhevm v0.14.0 into ~/.cache/fhevm-dagster/fhevm-v0.14.0
#    (from the bare mirror, or FHEVM_MIRROR=<git dir>) unless it is already there;
# 2. points the git-ignored symlink tools/reference-vectors/reference at it;
# 3. installs protoc (protobuf-compiler) if missing: fhevm-engine-common's build.rs needs it;
# 4. builds this tool (SQLX_OFFLINE, the reference's own Cargo.lock versions) and runs it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${FHEVM_DAGSTER_CACHE:-$HOME/.cache/fhevm-dagster}"
checkout="$cache/fhevm-v0.14.0"
mirror="${FHEVM_MIRROR:-/work/.mirror/zama-ai+fhevm/repo}"
tag="v0.14.0"

if [ ! -f "$checkout/coprocessor/fhevm-engine/fhevm-engine-common/Cargo.toml" ] \
    || [ ! -f "$checkout/coprocessor/proto/common.proto" ]; then
    echo "extracting $tag coprocessor/ from $mirror into $checkout"
    mkdir -p "$checkout"
    git -C "$mirror" archive "$tag" coprocessor | tar -x -C "$checkout"
fi
ln -sfn "$checkout" "$here/reference"

if ! command -v protoc >/dev/null 2>&1; then
    echo "installing protobuf-compiler"
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y protobuf-compiler
fi

export SQLX_OFFLINE=true
export RUSTUP_TOOLCHAIN="${RUSTUP_TOOLCHAIN:-stable}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/reference-target}"
jobs="${JOBS:-2}"

start=$(date +%s)
(cd "$here" && cargo build --release --locked -j "$jobs")
echo "build: $(( $(date +%s) - start ))s"

start=$(date +%s)
"$CARGO_TARGET_DIR/release/reference-vectors" --repo "$repo" "$@"
echo "run: $(( $(date +%s) - start ))s"
