#!/usr/bin/env bash
# The GPU check of the CUDA backend, as one script for a machine with an NVIDIA GPU (driver 580 or
# later) and Python >= 3.11, without network: installs the CUDA wheel of tfhe-py and the few pure
# Python packages the check imports from a folder of wheels, then runs benchmarks/gpu_check.py
# (every operator against the oracle and the reference's bytes, GPU/CPU bytes of a batch,
# transfers per second for 10, 100 and 1000 independent transfers, beside the CPU's of the same run).
#
#   benchmarks/gpu_check.sh --prepare DIR [WORK]  # here, with network: the GPU wheel (make
#                                                  # tfhe-py-gpu), the Python 3.12 wheels, WORK
#   benchmarks/gpu_check.sh DIR [OUT]              # there: the check; JSON report in OUT
#
# WORK is a range exported by `benchmarks/vs_reference.py` (`<mode>-<n>.work.json` in its work
# folder): the transfers of the throughput batches. Without it the check runs the operators only.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
# What benchmarks/gpu_check.py imports beyond the standard library and tfhe_py, at the versions of
# requirements.txt (toolz, regex and typing_extensions are usually present; carried all the same).
PURE=(eth-abi eth-hash eth-typing eth-utils parsimonious pydantic annotated-types
      typing-inspection typing_extensions toolz)
BINARY=(cytoolz pycryptodome pydantic_core regex)

pinned() {
  grep -iE "^${1//[-_]/[-_]}==" "$REPO/requirements.txt" ||
    { echo "$1 is not pinned in requirements.txt" >&2; exit 1; }
}

if [ "${1:-}" = "--prepare" ]; then
  DIR="$2"
  mkdir -p "$DIR"
  wheel="$(make -s -C "$REPO" tfhe-py-gpu | tail -1)"
  cp "$wheel" "$DIR/"
  for p in "${PURE[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$DIR" "$(pinned "$p")"
  done
  for p in "${BINARY[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d "$DIR" "$(pinned "$p")"
  done
  [ -z "${3:-}" ] || cp "$3" "$DIR/work.json"
  du -sh "$DIR"
  exit 0
fi

DIR="$1"
OUT="${2:-$REPO}"
SITE="$(mktemp -d)/site"
python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$DIR"/*.whl
export PYTHONPATH="$SITE:$REPO" PYTHONUNBUFFERED=1
export FHEVM_DAGSTER_CACHE="${FHEVM_DAGSTER_CACHE:-$(mktemp -d)}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
WORK=()
[ -f "$DIR/work.json" ] && WORK=(--work "$DIR/work.json" --cpu-batches 10)
python3 "$REPO/benchmarks/gpu_check.py" --device cuda --compare-cpu "${WORK[@]}" \
  --out "$OUT/gpu_check.json"
