# Sourced by generate.sh and build-bench.sh (not run on its own): makes the reference crates
# available and sets the build environment of this tool.
#
# 1. makes coprocessor/ of zama-ai/fhevm v0.14.0 available in ~/.cache/fhevm-dagster/fhevm-v0.14.0
#    unless it is already there, from the first source given:
#      FHEVM_REFERENCE=<dir>  a work tree of zama-ai/fhevm checked out at v0.14.0 (copied);
#      FHEVM_MIRROR=<git dir> a clone or bare mirror holding the tag (`git archive`);
#      otherwise a shallow clone of FHEVM_REPO_URL (default the public GitHub repository) at the tag;
#    and stops with a message naming all three when none works;
# 2. points the git-ignored symlink tools/reference-vectors/reference at it;
# 3. installs protoc (protobuf-compiler) if missing: fhevm-engine-common's build.rs needs it;
# 4. exports SQLX_OFFLINE, RUSTUP_TOOLCHAIN and CARGO_TARGET_DIR, and sets `here` (this
#    directory), `repo`, `cache` and `jobs` (JOBS, default 2) for the caller.
# Messages go to stderr.

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${FHEVM_DAGSTER_CACHE:-$HOME/.cache/fhevm-dagster}"
checkout="$cache/fhevm-v0.14.0"
tag="v0.14.0"
url="${FHEVM_REPO_URL:-https://github.com/zama-ai/fhevm.git}"

reference_complete() {
    [ -f "$1/coprocessor/fhevm-engine/fhevm-engine-common/Cargo.toml" ] \
        && [ -f "$1/coprocessor/fhevm-engine/scheduler/Cargo.toml" ] \
        && [ -f "$1/coprocessor/proto/common.proto" ]
}

if ! reference_complete "$checkout"; then
    rm -rf "$checkout" && mkdir -p "$checkout"
    if [ -n "${FHEVM_REFERENCE:-}" ]; then
        echo "copying coprocessor/ from the work tree $FHEVM_REFERENCE into $checkout" >&2
        found="$(git -C "$FHEVM_REFERENCE" describe --tags --exact-match 2>/dev/null || true)"
        if [ "$found" != "$tag" ]; then
            echo "FHEVM_REFERENCE=$FHEVM_REFERENCE is not checked out at $tag (git describe: ${found:-none})" >&2
            return 1 2>/dev/null || exit 1
        fi
        cp -r "$FHEVM_REFERENCE/coprocessor" "$checkout/"
    elif [ -n "${FHEVM_MIRROR:-}" ]; then
        echo "extracting $tag coprocessor/ from $FHEVM_MIRROR into $checkout" >&2
        git -C "$FHEVM_MIRROR" archive "$tag" coprocessor | tar -x -C "$checkout"
    else
        echo "cloning $url at $tag (shallow) for its coprocessor/ into $checkout" >&2
        clone="$(mktemp -d)"
        if git clone -q --depth 1 --branch "$tag" "$url" "$clone/fhevm"; then
            mv "$clone/fhevm/coprocessor" "$checkout/"
        fi
        rm -rf "$clone"
    fi
    if ! reference_complete "$checkout"; then
        rm -rf "$checkout"
        echo "no reference checkout of zama-ai/fhevm $tag: give FHEVM_REFERENCE=<work tree at $tag>," \
            "FHEVM_MIRROR=<git dir with the tag>, or a reachable FHEVM_REPO_URL (now $url)" >&2
        return 1 2>/dev/null || exit 1
    fi
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
