#!/usr/bin/env bash
# Builds the CUDA wheel of tfhe-py (cargo feature `gpu`: TFHE-rs's CUDA backend) on a machine
# without a GPU or a CUDA install: CUDA 13.0's compiler, headers and runtime come from NVIDIA's
# Python wheels, CMake from its wheel. Device code is compiled for one architecture (default sm_90,
# the H100/H200), so the wheel stays small enough to travel; CUDA 13.0 matches the 580-series
# driver (a newer toolkit's PTX would not load there). The runtime is linked statically: the wheel
# needs only the driver's libcuda on the GPU machine.
#
#   tfhe-py/build-gpu.sh            # prints the wheel's path last
#   CUDA_ARCH=89 tfhe-py/build-gpu.sh
#
# Caches (tools, the patched backend, the target dir, the wheel) live under the cache directory,
# outside the clone: a repeat build with an unchanged crate only re-links.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${FHEVM_DAGSTER_CACHE:-$HOME/.cache/fhevm-dagster}"
ARCH="${CUDA_ARCH:-90}"
TOOLS="$CACHE/cuda-venv"
BUILD="$CACHE/gpu-build"
CUDA_WHEELS=(
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 cmake==3.31.6 maturin==1.16.0
)

[ -x "$TOOLS/bin/python" ] || python3 -m venv "$TOOLS"
"$TOOLS/bin/pip" install -q "${CUDA_WHEELS[@]}"
CUDA="$("$TOOLS/bin/python" -c 'import nvidia, pathlib; print(pathlib.Path(nvidia.__path__[0]) / "cu13")')"
# nvcc's profile looks for libraries in lib64; the wheels install lib.
ln -sfn lib "$CUDA/lib64"
# `-lcudart` of the backend's build script resolves to the static runtime.
mkdir -p "$BUILD/link"
ln -sfn "$CUDA/lib/libcudart_static.a" "$BUILD/link/libcudart.a"

# The backend's CMakeLists compiles for the GPU it finds at build time, else for sm_70 (which
# CUDA 13 no longer supports): a copy of the crate compiled for $ARCH, patched in for this build.
(cd "$HERE" && cargo fetch --quiet)
BACKEND_VERSION="$(grep -A1 '^name = "tfhe-cuda-backend"' "$HERE/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')"
UPSTREAM="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"tfhe-cuda-backend-$BACKEND_VERSION" | head -1)"
BACKEND="$BUILD/tfhe-cuda-backend-$BACKEND_VERSION-sm$ARCH"
if [ ! -f "$BACKEND/.patched" ]; then
  rm -rf "$BACKEND" && cp -a "$UPSTREAM" "$BACKEND"
  sed -i -e 's/set(CUDA_SUCCESS "TRUE")/set(CUDA_SUCCESS "FALSE")/' \
    -e "s/set(CMAKE_CUDA_ARCHITECTURES 70)/set(CMAKE_CUDA_ARCHITECTURES $ARCH)/" \
    -e "s/set(CUDA_ARCH \"700\")/set(CUDA_ARCH \"${ARCH}0\")/" "$BACKEND/cuda/CMakeLists.txt"
  for want in 'set(CUDA_SUCCESS "FALSE")' "set(CMAKE_CUDA_ARCHITECTURES $ARCH)" "set(CUDA_ARCH \"${ARCH}0\")"; do
    grep -qF "$want" "$BACKEND/cuda/CMakeLists.txt" ||
      { echo "tfhe-cuda-backend $BACKEND_VERSION: cannot pin the architecture ($want)" >&2; exit 1; }
  done
  touch "$BACKEND/.patched"
fi

# The crate is built from a copy whose cargo config carries the patch, so the clone's Cargo.lock
# keeps the registry backend. The copy's files are new (not `cp -a`): cargo compares source
# mtimes with its last build, which an edit made while that build ran would predate.
mkdir -p "$BUILD/src/.cargo"
rm -rf "$BUILD/src/tfhe-py" && cp -r "$HERE" "$BUILD/src/tfhe-py" && rm -rf "$BUILD/src/tfhe-py/target"
printf '[patch.crates-io]\ntfhe-cuda-backend = { path = "%s" }\n' "$BACKEND" > "$BUILD/src/.cargo/config.toml"

export PATH="$CUDA/bin:$TOOLS/bin:$PATH"
export CUDACXX="$CUDA/bin/nvcc" CUDA_PATH="$CUDA" CUDAToolkit_ROOT="$CUDA"
export CARGO_TARGET_DIR="$CACHE/cargo-target-gpu-sm$ARCH"
export RUSTFLAGS="-L native=$BUILD/link"
OUT="$CACHE/wheels-gpu"
started=$(date +%s)
(cd "$BUILD/src/tfhe-py" && maturin build --release --features gpu --compatibility linux -o "$OUT" >&2)
WHEEL="$(ls -t "$OUT"/tfhe_py-*.whl | head -1)"
SIZE=$(stat -c %s "$WHEEL")
echo "built in $(($(date +%s) - started)) s: $((SIZE / 1048576)) MiB, sm_$ARCH, CUDA 13.0" >&2
[ "$SIZE" -le $((64 << 20)) ] || { echo "$WHEEL is over 64 MiB: it cannot travel" >&2; exit 1; }
echo "$WHEEL"
