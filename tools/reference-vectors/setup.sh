# Sourced by generate.sh and build-bench.sh (not run on its own): makes the reference crates
# available and sets the build environment of this tool.
#
# 1. extracts coprocessor/ of zama-ai/fhevm v0.14.0 into ~/.cache/fhevm-dagster/fhevm-v0.14.0
#    (from the bare mirror, or FHEVM_MIRROR=<git dir>) unless it is already there;
# 2. points the git-ignored symlink tools/reference-vectors/reference at it;
# 3. installs protoc (protobuf-compiler) if missing: fhevm-engine-common's build.rs needs it;
# 4. exports SQLX_OFFLINE, RUSTUP_TOOLCHAIN and CARGO_TARGET_DIR, and sets `here` (this
#    directory), `repo`, `cache` and `jobs` (JOBS, default 2) for the caller.
# Messages go to stderr.

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${FHEVM_DAGSTER_CACHE:-$HOME/.cache/fhevm-dagster}"
checkout="$cache/fhevm-v0.14.0"
mirror="${FHEVM_MIRROR:-/work/.mirror/zama-ai+fhevm/repo}"
tag="v0.14.0"

if [ ! -f "$checkout/coprocessor/fhevm-engine/fhevm-engine-common/Cargo.toml" ] \
    || [ ! -f "$checkout/coprocessor/fhevm-engine/scheduler/Cargo.toml" ] \
    || [ ! -f "$checkout/coprocessor/proto/common.proto" ]; then
    echo "extracting $tag coprocessor/ from $mirror into $checkout" >&2
    mkdir -p "$checkout"
    git -C "$mirror" archive "$tag" coprocessor | tar -x -C "$checkout"
fi
ln -sfn "$checkout" "$here/reference"

if ! command -v protoc >/dev/null 2>&1; then
    echo "installing protobuf-compiler" >&2
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y protobuf-compiler >&2
fi

export SQLX_OFFLINE=true
export RUSTUP_TOOLCHAIN="${RUSTUP_TOOLCHAIN:-stable}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/reference-target}"
jobs="${JOBS:-2}"
